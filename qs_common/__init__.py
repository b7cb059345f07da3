"""The one small package shared by ingest, worker and dashboard: models, codec, key names, settings, venues."""
