"""tools/gpu_check.sh cannot run without a GPU here; it must at least parse, and name only flags,
configs and test markers that exist."""
import re
import subprocess
from pathlib import Path

SCRIPT = Path("tools/gpu_check.sh")


def test_gpu_check_parses_and_its_references_exist():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    for scenario in ("target_free", "ownership", "authorization"):
        assert Path(f"configs/trainers/IPCLIP/vit_b16_{scenario}.yaml").is_file()
    assert "cuda:" in Path("pytest.ini").read_text()  # the marker `pytest -m cuda` selects
    benchmark_flags = set(re.findall(r'add_argument\("(--[a-z-]+)"', Path("tools/benchmark.py").read_text()))
    calls = re.findall(r"tools/benchmark\.py([^\n]*(?:\\\n[^\n]*)*)", text)
    used = {word for call in calls for word in call.split() if word.startswith("--")}
    assert {"--device", "--prec", "--batch", "--classes"} <= used <= benchmark_flags
