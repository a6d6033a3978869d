"""tegrastats parsing on recorded-format lines of four Jetson modules, energy, clock check, sampler."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from medfuse.benchmarks.tegrastats import (
    TegrastatsSampler,
    check_clocks,
    energy_per_inference_mj,
    mean_power_mw,
    parse_tegrastats_line,
)
from medfuse.errors import UsageError

FIXTURES = Path(__file__).parent / "fixtures" / "tegrastats"


def _lines(name: str) -> list[str]:
    return [ln for ln in (FIXTURES / name).read_text().splitlines() if ln.strip()]


def test_agx_orin_jetpack6() -> None:
    s = parse_tegrastats_line(_lines("agx_orin_jp6.txt")[0])
    assert (s.ram_used_mb, s.ram_total_mb, s.swap_used_mb) == (5520, 62841, 0)
    assert {k: (r.current_mw, r.average_mw) for k, r in s.rails.items()} == {
        "VDD_GPU_SOC": (2368.0, 2368.0),
        "VDD_CPU_CV": (790.0, 790.0),
        "VIN_SYS_5V0": (3870.0, 3870.0),
    }
    assert s.gr3d_percent == 61 and s.gr3d_freq_mhz == (1300, 1300)
    assert s.emc_percent == 14 and s.emc_freq_mhz == 3199
    assert len(s.cpu_load_percent) == 12 and s.cpu_freq_mhz[0] == 2201
    assert s.temps_c["gpu"] == pytest.approx(42.906) and s.temps_c["tj"] == pytest.approx(46.875)
    assert s.total_power_mw() == 2368 + 790 + 3870  # no VDD_IN: sum of the rails


def test_orin_nano() -> None:
    s = parse_tegrastats_line(_lines("orin_nano_jp6.txt")[0])
    assert s.rails["VDD_IN"].current_mw == 4952
    assert s.rails["VDD_CPU_GPU_CV"].current_mw == 553 and s.rails["VDD_SOC"].current_mw == 1420
    assert s.total_power_mw() == 4952  # VDD_IN is the module input: not summed with the others
    assert s.gr3d_freq_mhz == (305,) and s.emc_freq_mhz == 2133
    assert (s.ram_used_mb, s.ram_total_mb) == (2394, 7620)
    assert s.temps_c["cpu"] == pytest.approx(48.5)


def test_xavier_nx_older_format_without_units_or_clocks() -> None:
    s = parse_tegrastats_line(_lines("xavier_nx_jp4.txt")[1])
    assert {k: r.current_mw for k, r in s.rails.items()} == {
        "VDD_IN": 6921.0,
        "VDD_CPU_GPU_CV": 2145.0,
        "VDD_SOC": 1554.0,
    }
    assert s.rails["VDD_IN"].average_mw == 5716
    assert s.gr3d_percent == 83 and s.gr3d_freq_mhz == ()
    assert s.emc_percent == 9 and s.emc_freq_mhz is None
    assert s.cpu_load_percent == (27, 12, 9, 4, None, None)  # two cores off
    assert s.temps_c == {
        "AO": 36.0,
        "GPU": 35.5,
        "PMIC": 100.0,
        "AUX": 35.0,
        "CPU": 37.0,
        "thermal": 35.95,
    }


def test_agx_xavier_short_rail_names() -> None:
    s = parse_tegrastats_line(_lines("agx_xavier_jp4.txt")[0])
    assert {k: r.current_mw for k, r in s.rails.items()} == {
        "GPU": 0.0,
        "CPU": 616.0,
        "SOC": 1386.0,
        "CV": 0.0,
        "VDDRQ": 308.0,
        "SYS5V": 2233.0,
    }
    assert "RAM" not in s.rails and "SWAP" not in s.rails
    assert s.total_power_mw() == 616 + 1386 + 308 + 2233
    assert s.gr3d_freq_mhz == (1377,) and s.emc_freq_mhz == 2133
    assert s.temps_c["Tdiode"] == pytest.approx(39.75)
    assert len(s.cpu_freq_mhz) == 8


def test_energy_per_inference_integration() -> None:
    samples = [parse_tegrastats_line(ln) for ln in _lines("orin_nano_jp6.txt")]
    mean = mean_power_mw(samples)
    assert mean is not None
    assert mean == pytest.approx((4952 + 6752 + 7152) / 3)  # VDD_IN, mW
    # 2.5 s of measurement, 500 inferences: mJ = mW × s / n
    expected = (4952 + 6752 + 7152) / 3 * 2.5 / 500
    assert energy_per_inference_mj(mean, 2.5, 500) == pytest.approx(expected)
    assert energy_per_inference_mj(5000.0, 2.0, 100) == pytest.approx(100.0)
    with pytest.raises(UsageError):
        energy_per_inference_mj(5000.0, 0.0, 10)


def test_mean_power_without_rails_is_none() -> None:
    assert mean_power_mw([parse_tegrastats_line("RAM 1/2MB")]) is None


@pytest.mark.parametrize(
    ("fixture", "locked"),
    [
        ("agx_orin_jp6.txt", True),  # GR3D 1300 and EMC 3199 throughout: jetson_clocks applied
        ("agx_xavier_jp4.txt", True),
        ("orin_nano_jp6.txt", False),  # GR3D 305 → 624 MHz under load: DVFS
        ("xavier_nx_jp4.txt", None),  # no clock values (tegrastats without root)
    ],
)
def test_clock_lock_heuristic(fixture: str, locked: bool | None) -> None:
    check = check_clocks([parse_tegrastats_line(ln) for ln in _lines(fixture)])
    assert check.locked is locked
    if locked is False:
        assert "jetson_clocks" in check.message and "GPU" in check.message


def _fake_tegrastats(tmp_path: Path) -> Path:
    """A stand-in executable printing recorded lines at --interval (no tegrastats here)."""
    script = tmp_path / "tegrastats"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "ms = int(sys.argv[sys.argv.index('--interval') + 1])\n"
        f"lines = open({str(FIXTURES / 'agx_orin_jp6.txt')!r}).read().splitlines()\n"
        "i = 0\n"
        "while True:\n"
        "    print(lines[i % len(lines)], flush=True)\n"
        "    i += 1\n"
        "    time.sleep(ms / 1000)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_sampler_collects_lines_in_background(tmp_path: Path) -> None:
    with TegrastatsSampler(20, command=[str(_fake_tegrastats(tmp_path))]) as sampler:
        deadline = time.monotonic() + 5
        while len(sampler.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    samples = sampler.samples
    assert len(samples) >= 3
    assert samples[0].rails["VDD_GPU_SOC"].current_mw == 2368
    assert check_clocks(samples).locked is True


@pytest.mark.jetson
def test_real_tegrastats() -> None:
    with TegrastatsSampler(100) as sampler:
        time.sleep(0.5)
    assert sampler.samples and sampler.samples[0].ram_total_mb
    assert os.getpid() > 0
