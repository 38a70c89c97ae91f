"""NN-VVC's external reference (conventional_codecs/seeded_reference.py): x265 codes frames 1..N from a
picture the receiver regenerates; only their units travel, and nothing else decodes them."""

import csv
import subprocess
import sys

import pytest
import torch

from conventional_codecs.pyav_video import PyAVVideoCodec
from conventional_codecs.seeded_reference import CHECK_BYTES, SeededReferenceCodec
from vcmlab.errors import BitstreamError, ConfigError


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    torch.manual_seed(0)
    y, x = torch.meshgrid(torch.arange(64), torch.arange(96), indexing="ij")
    noise = 0.1 * torch.rand(64, 96)
    return torch.stack(
        [
            torch.stack([0.5 + 0.3 * torch.sin((x + 3 * t) / 6.0), 0.5 + 0.2 * torch.cos(y / 5.0), 0.4 + noise])
            for t in range(5)
        ]
    ).float()


def test_only_the_inter_frames_travel_and_decode_as_x265_alone_codes_the_sequence(clip, tmp_path):
    codec = SeededReferenceCodec(qp=32)
    reference, frames = clip[0], clip[1:]
    data = codec.encode(reference, frames)
    sizes = codec.frame_sizes(reference, data)
    assert len(sizes) == 4 and len(data) == 1 + CHECK_BYTES + sum(sizes) + 4  # count, checks, P units, CRC
    decoded, reference_hat = codec.decode_with_reference(reference, data)
    # identity: the same as x265 alone coding [reference, x1..xN] with these settings
    alone = PyAVVideoCodec("hevc", 32, 10_000, "medium", intra_qp=0)
    expected = alone.decode(alone.encode(clip))
    assert torch.equal(decoded, expected[1:]) and torch.equal(reference_hat, expected[0])
    assert codec.reference_psnr(reference) > 36  # the regenerated reference costs nothing: coded at QP 0
    (tmp_path / "p.bin").write_bytes(data)
    torch.save({"reference": reference, "decoded": decoded}, tmp_path / "in.pt")
    script = f"""
import torch
from conventional_codecs.seeded_reference import SeededReferenceCodec
saved = torch.load({str(tmp_path / "in.pt")!r}, weights_only=True)
decoded = SeededReferenceCodec(qp=32).decode(saved["reference"], open({str(tmp_path / "p.bin")!r}, "rb").read())
assert torch.equal(decoded, saved["decoded"]), "differs"
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_x265_codes_the_reference_at_intra_qp_and_the_rest_at_qp(clip, tmp_path):
    codec = SeededReferenceCodec(qp=37, intra_qp=4, preset="ultrafast")
    log = tmp_path / "frames.csv"
    codec.inner.options["x265-params"] += f":csv={log}:csv-log-level=1"
    codec.inner.encode(clip[:3])
    with open(log) as f:
        rows = [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]
    assert [(r["Type"], float(r["QP"])) for r in rows] == [("I-SLICE", 4.0), ("P-SLICE", 37.0), ("P-SLICE", 37.0)]
    with pytest.raises(ConfigError, match="intra_qp"):
        SeededReferenceCodec(qp=30, intra_qp=31)


def test_another_reference_other_settings_and_damage_are_refused(clip):
    codec = SeededReferenceCodec(qp=32, preset="ultrafast")
    data = codec.encode(clip[0], clip[1:3])
    with pytest.raises(BitstreamError, match="regenerated reference differs"):
        codec.decode(clip[0] + 1 / 255, data)
    with pytest.raises(BitstreamError, match="other x265 settings"):
        SeededReferenceCodec(qp=33, preset="ultrafast").decode(clip[0], data)
    with pytest.raises(BitstreamError, match="checksum"):
        codec.decode(clip[0], data[:20] + bytes([data[20] ^ 1]) + data[21:])
    with pytest.raises(BitstreamError, match="checksum"):
        codec.decode(clip[0], data[:-1])
    assert torch.equal(codec.decode(clip[0], data), codec.decode(clip[0], bytes(data)))
