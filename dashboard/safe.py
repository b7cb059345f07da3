"""Inert output: text from files, Redis or the API shown as text, and CSV downloads no spreadsheet executes.

Streamlit renders the body of `st.markdown`, `st.caption`, `st.error`, `st.toast`, titles and widget labels as
Markdown (links, bare URLs, `:red[...]` directives, LaTeX); a symbol column like `[x](http://evil.example)` would
become a link. `md` escapes the ASCII punctuation that markup is made of (CommonMark allows a backslash before
any of them) and breaks bare URLs and e-mail addresses with an invisible word joiner, so the text reads the
same and nothing in it is markup. Plotly's titles and trace names take a little
HTML (`<a href>` included), so `plotly` escapes the three characters that start it.

`csv_text` is the one way a frame becomes a download: a cell (or header) that starts with = + - @, tab or CR
gets a leading ' (OWASP's CSV-injection advice), unless the whole cell is a plain number such as -0.5 or
+1e-3, which stays a number. Numeric columns are never touched: their text is always a number.
"""

from __future__ import annotations

import re
import string

import pandas as pd

# Every ASCII punctuation character that can start or shape markup (links, emphasis, code, HTML, directives,
# LaTeX, autolinks via ':' '@' and '.'); , ; ' " ? % / are left alone: they start nothing.
_MD_SPECIAL = re.compile("([" + re.escape(string.punctuation.translate(str.maketrans("", "", ",;'\"?%/"))) + "])")
# Streamlit's GFM turns bare URLs and e-mail addresses into links after escapes are resolved, so escaping
# cannot stop them: an invisible WORD JOINER after "scheme:", "www" and "@" breaks the pattern, the text
# reads the same.
_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)[a-z][a-z0-9+.-]*:|\bwww(?=\.)|@")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER)


def md(value: object) -> str:
    """`value` as Markdown that renders as exactly its text (one line: line breaks become spaces)."""
    text = " ".join(str(value).splitlines())
    return _MD_SPECIAL.sub(r"\\\1", _AUTOLINK.sub("\\g<0>" + _JOINER, text))


def plotly(value: object) -> str:
    """`value` for a Plotly title or trace name: its pseudo-HTML tags and entities are shown, not applied."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def csv_cell(value: str) -> str:
    """One cell neutralised: a leading ' when a spreadsheet would read it as a formula, numbers kept."""
    if value.startswith(_FORMULA_START) and not _NUMBER_RE.fullmatch(value):
        return "'" + value
    return value


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells and column names cannot start a formula (see `csv_cell`)."""
    out = frame.copy()
    out.columns = [csv_cell(str(c)) for c in out.columns]
    for i, dtype in enumerate(out.dtypes):
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
            continue  # numbers and times print as numbers and times
        col = out.iloc[:, i]
        text = col.astype("string")
        risky = text.str.startswith(_FORMULA_START).fillna(False) & ~text.str.fullmatch(_NUMBER).fillna(False)
        if risky.any():
            col = col.astype(object)
            col[risky] = "'" + text[risky]
            out.isetitem(i, col)
    return out


def csv_text(frame: pd.DataFrame) -> str:
    """The frame as CSV for a download button, neutralised; the only way the dashboard writes a CSV."""
    return neutralise(frame).to_csv(index=False)


def filename(name: str) -> str:
    """A download's file name from user text: letters, digits, dot, dash and underscore only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "download.csv"
