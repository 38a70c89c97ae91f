"""A stand-in for VTM's EncoderAppStatic / VVenC's vvencFFapp and DecoderAppStatic in tests (no VVC
encoder is installable). As encoder it reads the same arguments and raw .yuv input, records its argument
list (FAKE_VVC_LOG) and codes the sequence with x265 in the structure the configuration file names, so
that the wrapper's plumbing (input file, sizes, intra period, display order) runs for real, with an HEVC
stream in place of a VVC one. As decoder (`-b stream -o out.yuv -d depth`) it writes the 8-bit pictures."""

import io
import json
import os
import sys
from pathlib import Path

import av
import numpy as np


def decode(stream: str, out: str) -> None:
    with open(out, "wb") as yuv, av.open(stream, format="hevc") as container:
        for frame in container.decode(video=0):
            yuv.write(frame.reformat(format="yuv420p").to_ndarray().tobytes())


def main(argv: list[str]) -> None:
    if "-o" in argv:
        return decode(argv[argv.index("-b") + 1], argv[argv.index("-o") + 1])
    options, flags = {}, iter(argv)
    for arg in flags:
        if arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            options[key] = value
        else:
            options[arg] = next(flags)
    with open(os.environ["FAKE_VVC_LOG"], "w") as log:
        json.dump(argv, log)
    lines = [line.split("#")[0] for line in Path(options["-c"]).read_text().splitlines()]
    cfg = {key.strip(): value.split() for key, _, value in (line.partition(":") for line in lines if ":" in line)}
    random_access = int(cfg["Frame1"][1]) > 1
    width, height = int(options["SourceWidth"]), int(options["SourceHeight"])
    assert options["InputBitDepth"] == "8"
    raw = np.fromfile(options["-i"], dtype=np.uint8)
    size = width * height * 3 // 2
    count = int(options["FramesToBeEncoded"])
    assert raw.size == count * size, (raw.size, count, size)
    keyint = int(options.get("IntraPeriod", 10_000))
    params = f"qp={options['QP']}:keyint={keyint}:min-keyint={keyint}:scenecut=0:open-gop=0:log-level=none"
    params += ":bframes=3:b-adapt=0:b-pyramid=1" if random_access else ":bframes=0"
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="hevc") as out:
        stream = out.add_stream("libx265", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"x265-params": params, "preset": "ultrafast"}
        for t in range(count):
            frame = av.VideoFrame(width, height, "yuv420p")
            chunk = raw[t * size : (t + 1) * size]
            planes = [chunk[: width * height], chunk[width * height : size * 5 // 6], chunk[size * 5 // 6 :]]
            for plane, data in zip(frame.planes, planes):
                rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size).copy()
                rows[:, : plane.width] = data.reshape(plane.height, plane.width)
                plane.update(rows.tobytes())
            frame.pts = t
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with open(options["-b"], "wb") as bitstream:
        bitstream.write(buffer.getvalue())


if __name__ == "__main__":
    main(sys.argv[1:])
