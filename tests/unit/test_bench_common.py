"""bench/common.py's pure helpers: the percentiles (with requests that were never answered), the
ratios and how they are printed, relative errors, TCP goodput on the wire and tc's rates, the
number formats and the JSON of the raw figures."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest


def load_common() -> ModuleType:
    # bench/ is not a package: the scripts find common.py next to them; here it is loaded by path.
    path = Path(__file__).resolve().parents[2] / "bench" / "common.py"
    spec = importlib.util.spec_from_file_location("bench_common", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


common = load_common()


def test_nearest_rank_without_censored_values() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert common.nearest_rank(values, 0, 50) == 50.0
    assert common.nearest_rank(values, 0, 99) == 99.0
    assert common.nearest_rank(values, 0, 100) == 100.0
    assert common.nearest_rank([7.0], 0, 1) == 7.0  # the rank is at least 1
    assert math.isnan(common.nearest_rank([], 0, 50))


def test_nearest_rank_counts_censored_values_as_infinitely_slow() -> None:
    answered = [float(v) for v in range(1, 99)]  # 98 answers, 2 requests never answered: n = 100
    assert common.nearest_rank(answered, 2, 50) == 50.0
    assert common.nearest_rank(answered, 2, 98) == 98.0
    assert common.nearest_rank(answered, 2, 99) == math.inf  # rank 99 falls on an unanswered one
    assert common.nearest_rank([], 3, 50) == math.inf


def test_interpolated_percentile_leaves_out_missing_figures() -> None:
    assert common.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == pytest.approx(2.5)
    assert common.percentile([4.0, 1.0, 3.0, 2.0], 0.9) == pytest.approx(3.7)
    assert common.percentile([1.0, None, math.nan, 3.0], 0.5) == pytest.approx(2.0)
    assert math.isnan(common.percentile([None, math.nan], 0.5))
    assert common.median([3.0, None, 1.0, math.nan, 2.0]) == 2.0


def test_ratio_is_nan_where_a_side_is_missing() -> None:
    assert common.ratio(3.0, 2.0) == pytest.approx(1.5)
    for a, b in ((1.0, 0.0), (None, 1.0), (1.0, None), (math.nan, 1.0), (1.0, math.nan)):
        assert math.isnan(common.ratio(a, b))


def test_ratio_formatting_with_bounds() -> None:
    assert str(common.Ratio(3.14159)) == "3.14x"
    assert str(common.Ratio(0.0456)) == "0.0456x"
    assert str(common.Ratio(1234.5)) == "1234x"  # three significant digits would read 1.23e+03
    assert str(common.Ratio(250.0, ">")) == ">250x"
    assert str(common.Ratio(0.5, "<")) == "<0.5x"
    assert str(common.Ratio(math.nan)) == "n/a"
    assert common.verdict_word(True) == "met" and common.verdict_word(False) == "NOT met"


def test_relative_error_against_a_target() -> None:
    assert common.relative_error(95.0, 100.0) == pytest.approx(-0.05)
    assert common.relative_error(10.2, 10.0) == pytest.approx(0.02)
    for measured, target in ((None, 5.0), (5.0, None), (5.0, 0.0), (math.nan, 5.0)):
        assert math.isnan(common.relative_error(measured, target))


def test_wire_rate_of_tcp_goodput() -> None:
    # 1448 bytes of payload travel in a 1514-byte frame (TCP+timestamps 32, IPv4 20, Ethernet 14).
    assert common.wire_bps(1448e6, 1448) == pytest.approx(1514e6)
    assert common.wire_bps(0.0, 1448) == 0.0


def test_tc_rates_in_bits_per_second() -> None:
    assert common.parse_tc_rate("500Mbit") == 500e6
    assert common.parse_tc_rate("10Kbit") == 10e3
    assert common.parse_tc_rate("1Gbit") == 1e9
    assert common.parse_tc_rate("96bit") == 96.0
    assert common.parse_tc_rate("1250Kbps") == 10e6  # bytes per second
    assert common.parse_tc_rate("2Mibit") == 2 * 1024 * 1024
    with pytest.raises(ValueError):
        common.parse_tc_rate("fast")


def test_number_formats_keep_their_width() -> None:
    assert common.fmt_ms(0.0123) == "   12.3"
    assert common.fmt_ms(0.0123, 6) == "  12.3"
    assert common.fmt_ms(None) == "      -" and common.fmt_ms(math.nan, 6) == "     -"
    assert common.fmt_s(2.5) == "  2.50"
    assert common.fmt_num(7.26, 8, 1) == "     7.3"


def test_saved_figures_are_strict_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "figures.json"
    common.save_json(target, {"p99": math.inf, "rows": [math.nan, 1.5], "pair": (2, -math.inf)})
    text = target.read_text()
    loaded = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert loaded == {"p99": "inf", "rows": ["nan", 1.5], "pair": [2, "-inf"]}
    assert capsys.readouterr().out == f"raw figures saved to {target}\n"
