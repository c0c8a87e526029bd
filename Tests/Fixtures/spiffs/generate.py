#!/usr/bin/env python3
"""Regenerates the golden SPIFFS images from inputs/ with ESP-IDF's spiffsgen.py.

Usage: python3 generate.py /path/to/esp-idf/components/spiffs/spiffsgen.py

spiffsgen.py is not in this repository. It adds files in os.walk order, which is
the filesystem's listing order; this script runs spiffsgen's own command line with
os.walk sorted (each directory's files by name, then its subdirectories by name)
so every checkout produces the same images. SPIFFSTests passes the files in that
order.
"""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# name, image size, spiffsgen options (see README.md)
SETS = [
    ('idf-default', '0x10000', []),
    ('esp8266-arduino', '0x20000',
     ['--page-size', '256', '--block-size', '8192', '--meta-len', '0',
      '--no-magic-len', '--aligned-obj-ix-tables']),
    ('aligned-512', '0x20000',
     ['--page-size', '512', '--block-size', '8192', '--aligned-obj-ix-tables']),
    ('bare-big-endian', '0x10000',
     ['--no-magic', '--no-magic-len', '--obj-name-len', '64', '--meta-len', '0',
      '--big-endian']),
    ('small-page', '0x10000', ['--page-size', '128', '--block-size', '8192']),
]

_walk = os.walk


def sorted_walk(top, *args, **kwargs):
    for root, dirs, files in _walk(top, *args, **kwargs):
        dirs.sort()  # in place: top-down os.walk descends in this order
        files.sort()
        yield root, dirs, files


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    spec = importlib.util.spec_from_file_location('spiffsgen', sys.argv[1])
    spiffsgen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(spiffsgen)
    os.walk = sorted_walk
    os.chdir(HERE)
    for name, size, options in SETS:
        sys.argv = ['spiffsgen.py', size, 'inputs', name + '.bin'] + options
        try:
            spiffsgen.main()
        except SystemExit as exit:
            if exit.code not in (None, 0):
                raise
        print(name + '.bin', os.path.getsize(name + '.bin'), 'bytes')


if __name__ == '__main__':
    main()
