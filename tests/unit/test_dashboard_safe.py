"""Inert output, the CSV neutraliser on every download path, hostile upload cells, the hardened Streamlit flags."""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path

import pandas as pd
import pytest
from streamlit import config as st_config

from dashboard import access, serve
from dashboard.csv_upload import CsvError, parse_ohlc_csv, to_api_csv
from dashboard.features import features
from dashboard.live import entries_frame
from dashboard.safe import csv_cell, csv_text, filename, md, neutralise, plotly
from qs_common import launcher, ohlc
from qs_common.settings import Settings

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
HYPERLINK = '=HYPERLINK("http://evil.example","x")'


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize(
    ("cell", "out"),
    [
        (HYPERLINK, "'" + HYPERLINK),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd", "'-2+3+cmd"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-0.5", "-0.5"),  # plain numbers stay numbers
        ("+1e-3", "+1e-3"),
        ("-12", "-12"),
        ("BTCUSDT", "BTCUSDT"),
        ("a=b", "a=b"),  # only the first character matters
        ("", ""),
    ],
)
def test_csv_cell(cell: str, out: str) -> None:
    assert csv_cell(cell) == out


def test_neutralise_touches_text_and_headers_not_numbers() -> None:
    frame = pd.DataFrame({HYPERLINK: [-1.5, 2.0], "name": [HYPERLINK, "-0.25"], "n": [-3, 4]})
    rows = _cells(csv_text(frame))
    assert rows[0] == ["'" + HYPERLINK, "name", "n"]
    assert rows[1] == ["-1.5", "'" + HYPERLINK, "-3"]
    assert rows[2] == ["2.0", "-0.25", "4"]
    assert list(frame.columns)[0] == HYPERLINK  # the caller's frame is not changed
    assert neutralise(pd.DataFrame()).empty


def test_download_paths_pair_analytics_features_alerts() -> None:
    """The frames each download builds, with hostile names where each takes user text."""
    # pair analytics of an upload: columns renamed to the file's symbols
    pair = pd.DataFrame({"open_time": [1], "y": [1.0], "x": [-2.0], "zscore": [-0.5]})
    pair = pair.rename(columns={"y": HYPERLINK, "x": "@evil"})
    assert _cells(csv_text(pair))[0] == ["open_time", "'" + HYPERLINK, "'@evil", "zscore"]
    assert _cells(csv_text(pair))[1] == ["1", "1.0", "-2.0", "-0.5"]
    # features (history and upload): numbers only, unchanged by the neutraliser
    candles = pd.DataFrame({"open_time": [0, 60_000], "open": [1.0, 1.0], "high": [2.0, 2.0], "low": [0.5, 0.5],
                            "close": [1.0, 0.9], "volume": [0.0, 3.0]})
    feats = features(candles)
    assert csv_text(feats) == feats.to_csv(index=False)
    # alert history: text fields straight from Redis
    alerts = entries_frame([("1-0", {"rule_id": "-x", "rule": "{}", "metric": "zscore", "value": "-2.5",
                                     "pair": HYPERLINK, "ts": "1723161599000"})])
    row = dict(zip(*_cells(csv_text(alerts)), strict=True))
    assert (row["pair"], row["rule_id"], row["value"], row["metric"]) == ("'" + HYPERLINK, "'-x", "-2.5", "zscore")


def test_every_download_button_goes_through_csv_text() -> None:
    """Structural: each st.download_button in the dashboard passes csv_text(...) as its data."""
    calls = 0
    for path in DASHBOARD.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "download_button":
                calls += 1
                data = node.args[1] if len(node.args) > 1 else next(k.value for k in node.keywords if k.arg == "data")
                assert isinstance(data, ast.Call) and getattr(data.func, "id", None) == "csv_text", (
                    f"{path.name}:{node.lineno}: a download that bypasses csv_text"
                )
    assert calls >= 5


def test_markdown_and_plotly_escaping() -> None:
    j = "\u2060"  # an invisible word joiner breaks bare URLs and e-mail addresses, which GFM links after escapes
    assert md("[x](http://evil.example)") == r"\[x\]\(http\:" + j + r"//evil\.example\)"
    assert md("a@b.example www.evil.example") == r"a\@" + j + r"b\.example www" + j + r"\.evil\.example"
    assert md(":red[alert] $x$ **b** <a>\nline") == r"\:red\[alert\] \$x\$ \*\*b\*\* \<a\> line"
    assert md("symbols BTCUSDT, ETHUSDT") == "symbols BTCUSDT, ETHUSDT"
    assert plotly('<a href="http://evil.example">x</a>') == '&lt;a href="http://evil.example"&gt;x&lt;/a&gt;'
    assert filename('=HYPERLINK("x")-features.csv') == "HYPERLINK_x_-features.csv"


def test_generic_ohlc_file_in_seconds_goes_to_the_api_without_empty_columns() -> None:
    body = b"time,open,high,low,close,volume\n1723154400,1,2,0.5,1.5,10\n1723154460,1.5,2,1,1.25,3\n"
    parsed = parse_ohlc_csv(body)
    assert parsed.frame["open_time"].tolist() == [1723154400000, 1723154460000]  # seconds, read as seconds
    api_body = to_api_csv(parsed.text)
    assert api_body.splitlines() == [
        "open_time,open,high,low,close,volume",
        "1723154400000,1,2,0.5,1.5,10",
        "1723154460000,1.5,2,1,1.25,3",
    ]
    assert "None" not in api_body
    # what the worker API will do with it: the shared rules accept it, optional columns unknown
    candles = ohlc.validate(ohlc.read_csv(api_body.encode()), 60_000)
    assert candles.frame["quote_volume"].null_count() == 2


def test_partly_filled_optional_column_is_sent_empty_not_none() -> None:
    body = b"time,open,high,low,close,volume,trades\n1723154400,1,2,0.5,1.5,10,\n1723154460,1,2,0.5,1.5,10,7\n"
    api_body = to_api_csv(parse_ohlc_csv(body).text)
    assert api_body.splitlines()[1:] == ["1723154400000,1,2,0.5,1.5,10,", "1723154460000,1,2,0.5,1.5,10,7"]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("1" * 1_000_000, "row 2, column open: a cell of 1,000,000 characters; at most 100"),
        ("1" * 1_000, "row 2, column open: '1111111111111111111111111111111111111111'… (1000 characters) is longer"),
    ],
)
def test_huge_cell_names_row_and_column(cell: str, expected: str) -> None:
    body = f"time,open,high,low,close\n1723154400,{cell},2,0.5,1\n".encode()
    with pytest.raises(CsvError) as err:
        parse_ohlc_csv(body)
    assert err.value.problems[0].startswith(expected)
    assert len(str(err.value)) < 300  # the cell does not come back whole


@pytest.mark.parametrize("value", ["99999999999999999999999", "-9223372036854775809", "1" * 40])
def test_open_time_beyond_int64_names_row_and_column(value: str) -> None:
    with pytest.raises(CsvError) as err:
        parse_ohlc_csv(f"timestamp,open,high,low,close\n{value},1,2,0.5,1\n".encode())
    assert err.value.problems == [f"row 2, column timestamp: {ohlc.show(value)} is beyond int64"]


def test_one_epoch_unit_per_file() -> None:
    body = b"time,open,high,low,close\n1723154400000,1,2,0.5,1\n1723154460000000,1,2,0.5,1\n"
    with pytest.raises(CsvError) as err:
        parse_ohlc_csv(body)
    assert err.value.problems == [
        "row 3, column time: '1723154460000000' looks like microseconds but the file's first time is in "
        "milliseconds (one unit per file)"
    ]


def test_what_the_api_would_refuse_is_refused_here() -> None:
    with pytest.raises(CsvError) as err:
        parse_ohlc_csv(b"time,open,high,low,close,volume\n1723154400,1,2,0.5,1.123456789,1\n")
    assert err.value.problems == ["row 2, column close: '1.123456789' has more than 8 decimal places "
                                  "(stored exactly, never rounded)"]


def test_file_larger_than_the_limit() -> None:
    with pytest.raises(CsvError, match="the limit is 1 MiB"):
        parse_ohlc_csv(b"x" * (1_048_576 + 1), max_bytes=1_048_576)


def test_streamlit_flags_are_known_options_with_allowed_values() -> None:
    opts = serve.streamlit_options(Settings(api_max_body_mb=12.5, dashboard_host="0.0.0.0"), 8600)  # type: ignore[call-arg]
    assert opts["server.maxUploadSize"] == "12"
    assert opts["server.address"] == "0.0.0.0" and opts["server.port"] == "8600"
    assert opts["client.showErrorDetails"] == "none"
    assert opts["client.toolbarMode"] == "minimal"
    assert opts["browser.gatherUsageStats"] == "false"
    known = st_config._config_options_template  # every option this Streamlit version has
    assert set(opts) <= set(known)
    cmd = serve.command(Settings(), 8600)  # type: ignore[call-arg]
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("dashboard/app.py")


def test_token_comparison() -> None:
    assert access.token_matches("s3cret", "s3cret")
    assert not access.token_matches("s3cre", "s3cret")
    assert not access.token_matches("", "")  # no token configured: nothing to match


def test_launcher_says_where_it_listens() -> None:
    quiet = launcher.startup_message(Settings())  # type: ignore[call-arg]
    assert "Dashboard:  http://127.0.0.1:8501 (this machine only)" in quiet
    assert "Worker API: http://127.0.0.1:8000 (this machine only)" in quiet
    assert "WARNING" not in quiet
    shared = launcher.startup_message(Settings(dashboard_host="0.0.0.0"))  # type: ignore[call-arg]
    assert "reachable from your network" in shared and "WARNING" in shared
    guarded = launcher.startup_message(Settings(dashboard_host="0.0.0.0", access_token="t"))  # type: ignore[call-arg]
    assert "WARNING" not in guarded


def test_redis_password_is_not_shown_to_visitors() -> None:
    from dashboard.data import redacted

    assert redacted("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redacted("redis://user:s3cret@h:1/0") == "redis://user:***@h:1/0"
    assert redacted("redis://localhost:6379/0") == "redis://localhost:6379/0"
