"""Folder and manifest parsing: pairing, per-item options, output naming, and one line per mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleanplate.batch import JobDefaults, load_jobs
from cleanplate.errors import InputError, OutputError
from tests.batch.conftest import make_shots


def _defaults(tmp_path: Path, **kw) -> JobDefaults:
    return JobDefaults(outdir=tmp_path / "out", **kw)


def test_folder_pairs_name_plate_files(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    make_shots(folder, names=["a.png", "b.png"])
    (folder / "plate.png").rename(folder / "a_plate.png")
    (folder / "b_plate.png").write_bytes((folder / "a_plate.png").read_bytes())
    (folder / "notes.txt").write_text("not media")
    items = load_jobs(folder, _defaults(tmp_path))
    assert [i.id for i in items] == ["a.png", "b.png"]
    assert [i.plate.name for i in items] == ["a_plate.png", "b_plate.png"]
    assert items[0].outputs[0].path == tmp_path / "out" / "a.png"


def test_folder_without_plate_is_one_line_error(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    make_shots(folder, names=["a.png"])
    (folder / "plate.png").unlink()
    with pytest.raises(InputError, match=r"no plate for a\.png: give --plate"):
        load_jobs(folder, _defaults(tmp_path))


def test_plate_dir_pairs_by_stem(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    make_shots(folder, names=["a.png", "b.png"])
    plates = tmp_path / "plates"
    plates.mkdir()
    for stem in ("a", "b"):
        (plates / f"{stem}.jpg").write_bytes((folder / "plate.png").read_bytes())
    (folder / "plate.png").unlink()
    items = load_jobs(folder, _defaults(tmp_path, plate_dir=plates))
    assert [i.plate for i in items] == [plates / "a.jpg", plates / "b.jpg"]


def test_csv_manifest_with_per_item_options(tmp_path: Path) -> None:
    make_shots(tmp_path / "in", names=["a.png", "b.png"])
    (tmp_path / "in" / "take.mp4").write_bytes(b"")  # existence is all the parser checks
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(
        "id,input,plate,outputs,background,align,start,end\n"
        'first,in/a.png,in/plate.png,"rgba,comp",red,yes,,\n'
        ",in/b.png,in/plate.png,alpha=mattes/b.png,,,,\n"
        'clip,in/take.mp4,in/plate.png,"rgba,alpha=t_alpha.mkv",,,1.5,0:03\n'
    )
    a, b, clip = load_jobs(manifest, _defaults(tmp_path))
    assert a.id == "first" and a.options == {"background": "red", "align": True}
    assert [(o.kind, o.path.name) for o in a.outputs] == [("rgba", "a.png"), ("comp", "a_comp.png")]
    assert b.id == "in/b.png" and b.outputs[0].path == tmp_path / "out" / "mattes" / "b.png"
    assert clip.media == "video" and clip.options == {"start": 1.5, "end": 3.0}
    assert [(o.kind, o.path.name, o.preset) for o in clip.outputs] == [
        ("rgba", "take.mov", "prores4444"),
        ("alpha", "t_alpha.mkv", "ffv1"),
    ]


def test_jsonl_manifest_lists_dicts_and_plate_frames(tmp_path: Path) -> None:
    make_shots(tmp_path / "in", names=["a.png"])
    (tmp_path / "in" / "take.mov").write_bytes(b"")
    manifest = tmp_path / "jobs.jsonl"
    lines = [
        {"input": "in/a.png", "plate": "in/plate.png", "outputs": ["rgba", "err"]},
        {"input": "in/take.mov", "plate_frames": "0:24", "outputs": {"comp": "take_comp.mp4"}, "smooth": 0.5},
    ]
    manifest.write_text("# comment\n" + "\n".join(json.dumps(x) for x in lines) + "\n\n")
    img, vid = load_jobs(manifest, _defaults(tmp_path))
    assert [o.kind for o in img.outputs] == ["rgba", "err"]
    assert vid.plate is None and vid.plate_frames == (0, 24) and vid.options == {"smooth": 0.5}
    assert vid.outputs[0].preset == "h264"
    # a round trip through JSON (how items travel to Ray workers) keeps everything
    from cleanplate.batch import WorkItem

    assert WorkItem.from_json(json.loads(json.dumps(vid.to_json()))) == vid


def test_format_names_video_outputs(tmp_path: Path) -> None:
    make_shots(tmp_path / "in", names=["a.png"])
    (tmp_path / "in" / "take.mp4").write_bytes(b"")
    (tmp_path / "in" / "a.png").unlink()
    items = load_jobs(
        tmp_path / "in",
        _defaults(tmp_path, plate=tmp_path / "in" / "plate.png", format_name="png", save=("rgba", "alpha", "err")),
    )
    (item,) = items
    assert [(o.kind, o.path.name, o.preset) for o in item.outputs] == [
        ("rgba", "take", "png"),
        ("alpha", "take_alpha", "png"),
    ]  # err is for images only: dropped from --save for videos


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("input,plate,colour\na.png,plate.png,red\n", r"jobs\.csv:1: unknown column 'colour'"),
        ("plate\nplate.png\n", r"needs a header row with an 'input' column"),
        ("input,plate,start\na.png,plate.png,3\n", r"jobs\.csv:2: start applies to videos only"),
        ("input,plate,align\na.png,plate.png,maybe\n", r"align: 'maybe' is not a yes/no value"),
        ("input,plate\nmissing.png,plate.png\n", r"missing\.png: no such file"),
        ("input,plate\na.png,nope.png\n", r"nope\.png: no such file"),
        ("input,plate\na.txt,plate.png\n", r"not an image or video file name"),
        ("input,plate,outputs\na.png,plate.png,rgba=x.png\nb.png,plate.png,rgba=x.png\n", r"would both write"),
        ("input,plate\na.png,plate.png\na.png,plate.png\n", r"item id 'a\.png' is used twice"),
        ("input,plate,outputs\na.png,plate.png,rgba=../a.png\n", r"would overwrite an input"),
        ("input,plate,outputs\na.png,plate.png,matte\n", r"unknown image output 'matte'"),
    ],
)
def test_manifest_mistakes_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    make_shots(tmp_path, names=["a.png", "b.png"])
    (tmp_path / "a.txt").write_text("x")
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(text)
    with pytest.raises((InputError, OutputError), match=message) as exc:
        load_jobs(manifest, JobDefaults(outdir=tmp_path / "out"))
    assert "\n" not in str(exc.value)


def test_video_mistakes(tmp_path: Path) -> None:
    make_shots(tmp_path, names=["a.png"])
    (tmp_path / "t.mp4").write_bytes(b"")
    for row, message in [
        ('{"input": "t.mp4", "plate": "plate.png", "outputs": "rgba,err"}', r"unknown video output 'err'.*images only"),
        ('{"input": "t.mp4", "plate": "plate.png", "outputs": "rgba=t.mp4"}', r"cannot carry alpha"),
        ('{"input": "t.mp4", "plate": "plate.png", "start": 4, "end": 2}', r"end \(2.0s\) must be after start"),
        ('{"input": "t.mp4", "plate_frames": "5:2"}', r"plate_frames '5:2' must be A:B"),
        ('{"input": "t.mp4", "plate": "plate.png", "smooth": 1.5}', r"smooth must be in \[0, 1\)"),
        ("[1, 2]", r"must be a JSON object"),
        ("{nope", r"jobs\.jsonl:1: not valid JSON"),
    ]:
        (tmp_path / "jobs.jsonl").write_text(row + "\n")
        with pytest.raises((InputError, OutputError), match=message):
            load_jobs(tmp_path / "jobs.jsonl", JobDefaults(outdir=tmp_path / "out"))


def test_fingerprint_follows_settings(tmp_path: Path) -> None:
    make_shots(tmp_path / "in", names=["a.png"])
    defaults = _defaults(tmp_path, plate=tmp_path / "in" / "plate.png")
    (item,) = load_jobs(tmp_path / "in", defaults)
    (same,) = load_jobs(tmp_path / "in", defaults)
    (other,) = load_jobs(tmp_path / "in", _defaults(tmp_path, plate=tmp_path / "in" / "plate.png", save=("alpha",)))
    model = {"model": "classical"}
    assert item.fingerprint(model) == same.fingerprint(model)
    assert item.fingerprint(model) != other.fingerprint(model)
    assert item.fingerprint(model) != item.fingerprint({"model": "default"})
