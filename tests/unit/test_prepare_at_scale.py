"""Preparation of a manifest big enough for worker processes writes exactly what
one process writes (same CSV bytes, same report, same skipped rows)."""

import os

from stop_slu.data_prep import rows as preparation
from stop_slu.data_prep.prepare import prepare
from stop_slu.data_prep.release import DEFAULT_TARGET, disk_path, manifest_file_id


def big_release(mini_release, root, copies=100):
    """The mini release's train rows repeated ``copies`` times under new file
    numbers (wavs hard-linked), plus a missing wav, a malformed parse and a
    duplicate row; eval and test as they are."""
    (root / "manifests").mkdir(parents=True)
    for split in ("eval", "test"):
        (root / "manifests" / f"{split}.tsv").write_bytes((mini_release / "manifests" / f"{split}.tsv").read_bytes())
        for wav in mini_release.glob(f"{split}_*/*/*.wav"):
            target = root / wav.relative_to(mini_release)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(wav, target)
    header, *rows = (mini_release / "manifests" / "train.tsv").read_text(encoding="utf-8").splitlines()
    lines, number = [header], 0
    for _ in range(copies):
        for row in rows:
            fields = row.split("\t")
            number += 1
            fields[0] = manifest_file_id("train", fields[1], number)
            target = root / disk_path("train", fields[1], number)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(mini_release / row.split("\t")[0], target)
            lines.append("\t".join(fields))
    os.unlink(root / lines[10].split("\t")[0])  # line 11: missing wav
    bad = lines[20].split("\t")
    column = header.split("\t").index(DEFAULT_TARGET)  # the target prepare reads by default
    bad[column] = bad[column][:-2]  # line 21: unbalanced parse
    lines[20] = "\t".join(bad)
    lines.append(lines[30])  # last line: duplicate of line 31
    (root / "manifests" / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1


def test_worker_processes_write_what_one_process_writes(mini_release, tmp_path):
    n_train = big_release(mini_release, tmp_path / "release")
    # Big enough for worker processes (when the machine has 2 cores or more).
    assert n_train >= preparation._PARALLEL_MIN_ROWS
    assert (tmp_path / "release" / "manifests" / "train.tsv").stat().st_size >= preparation._PARALLEL_MIN_BYTES

    one = prepare(tmp_path / "release", tmp_path / "one", workers=1, progress=False)
    many = prepare(tmp_path / "release", tmp_path / "many", workers=2, progress=False)

    assert one == many
    for split in ("train", "eval", "test"):
        assert (tmp_path / "one" / f"{split}.csv").read_bytes() == (tmp_path / "many" / f"{split}.csv").read_bytes()
    assert {(e["line"], e["reason"].split(" (")[0].split(":")[0]) for e in many["skipped"]} == {
        (11, "missing wav"),
        (21, "malformed target parse"),
        (n_train + 1, "duplicate row"),
    }
    assert many["splits"]["train"]["written"] == n_train - 3


def test_the_prepare_command_loads_no_model_libraries(mini_release, tmp_path):
    """`stop-slu prepare` as a whole process: torch and SpeechBrain (about
    800 MB and seconds to import) are loaded neither by the command nor by its
    worker processes, which fork from it."""
    import subprocess
    import sys

    from conftest import REPO

    code = (
        "import sys; from stop_slu.cli import main\n"
        "try:\n    main(sys.argv[1:])\n"
        "finally:\n    print(sorted(m for m in ('torch', 'speechbrain', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "prepare", str(mini_release), str(tmp_path / "out"), "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
