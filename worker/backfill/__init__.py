"""Backfill and gap repair from Binance's REST klines: history without holes, in Binance's own numbers.

`klines` parses the wire rows, `client` fetches them politely, `plan` decides what to fetch, `storage`
writes closed candles and reconciles them with live ones, `gaps` reads ingest's gap records, and `service`
runs it all in one worker thread.
"""
