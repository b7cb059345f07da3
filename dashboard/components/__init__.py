"""Drawing: each function takes frames or dicts and draws them; no reads here."""
