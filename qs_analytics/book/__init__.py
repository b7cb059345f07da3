"""Exact local L2 order books from Binance depth streams: the book, its synchronisation, its metrics. Pure code."""
