"""Appends a Python entry to the `lethe` program: a zip archive holding __main__.py, which Python
runs when it is given the program as a script (Python reads a zip from the end of a file; the
ELF loader ignores bytes after the program). torchrun starts its command with Python unless told
--no-python, so `torchrun --nproc-per-node N $(which lethe) unlearn ...` runs the data-parallel
launcher (python_bridge/distributed.py) on every rank.

    python cmake/python_entry.py PROGRAM SOURCE_FOLDER

SOURCE_FOLDER: where python_bridge/distributed.py is (a build in the source tree), or "" for the
installed wheel's package lethe.python_bridge. Run after linking and after installing (a strip
drops the entry); an entry there already is replaced, so running it twice gives the same file.
"""
import io
import struct
import sys
import zipfile

MAIN = '''"""`python lethe ARGS`, as torchrun starts `lethe`: the data-parallel launcher (docs/distributed.md)."""
import os
import sys

_SOURCE = {source!r}
if _SOURCE and os.path.isfile(os.path.join(_SOURCE, "python_bridge", "distributed.py")):
    sys.path.insert(0, _SOURCE)
    from python_bridge.distributed import main
else:
    from lethe.python_bridge.distributed import main
sys.exit(main(sys.argv[1:]))
'''


def elf_size(program):
    """Where the ELF file ends: its section header table, which the linker writes last."""
    with open(program, "rb") as f:
        header = f.read(64)
    if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        raise SystemExit(f"python_entry.py: {program} is not a 64-bit little-endian ELF program")
    (section_headers,) = struct.unpack_from("<Q", header, 0x28)
    entry_size, count = struct.unpack_from("<HH", header, 0x3A)
    return section_headers + entry_size * count


def main(program, source):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("__main__.py", date_time=(1980, 1, 1, 0, 0, 0))  # the same bytes every build
        archive.writestr(info, MAIN.format(source=source))
    with open(program, "r+b") as out:
        out.truncate(elf_size(program))
        out.seek(0, io.SEEK_END)
        out.write(buffer.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
