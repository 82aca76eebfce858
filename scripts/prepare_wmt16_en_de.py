#!/usr/bin/env python
"""Prepare WMT'16 English-German for the translation runs (Figs. 4 and 12, the earlier version's
ablations), following fairseq's examples/scaling_nmt recipe (Ott et al. 2018, the setup the paper
cites):

  1. the WMT'16 En-De corpus as Google preprocessed it for the Transformer papers (wmt16_en_de.tar.gz):
     Europarl v7 + Common Crawl + News Commentary v11, Moses-tokenised, cleaned, and split into a
     joint BPE of 32,000 merges (train.tok.clean.bpe.32000.*); newstest2013 (valid) and newstest2014
     (test) tokenised and BPE'd the same way;
  2. fairseq-preprocess --source-lang en --target-lang de --joined-dictionary
     --nwordssrc 32768 --nwordstgt 32768 into the data-bin (the joined dictionary lets the
     transformer "big" share all embeddings).

Tokenisation and BPE are those of the archive, as in fairseq's recipe. Nothing is downloaded: put
wmt16_en_de.tar.gz (linked from fairseq's examples/scaling_nmt/README.md) or its extracted files in
--raw.

    python scripts/prepare_wmt16_en_de.py --raw /datasets/raw/wmt16_en_de --out /datasets/fairseq/wmt16_en_de_bpe32k
    export WMT16_EN_DE_DATA_BIN=/datasets/fairseq/wmt16_en_de_bpe32k
"""
import argparse
import subprocess
import sys
import tarfile
from pathlib import Path

SOURCE, TARGET = "en", "de"
SPLIT_PREFIXES = {"train": "train.tok.clean.bpe.32000", "valid": "newstest2013.tok.bpe.32000",
                  "test": "newstest2014.tok.bpe.32000"}
DICTIONARY_SIZE = 32768


def required_files(folder):
    return [Path(folder) / f"{prefix}.{lang}" for prefix in SPLIT_PREFIXES.values() for lang in (SOURCE, TARGET)]


def find_raw(raw):
    """The folder holding the archive's files (extracting wmt16_en_de.tar.gz if needed), or exit
    with a message naming what is missing."""
    raw = Path(raw)
    if all(path.is_file() for path in required_files(raw)):
        return raw
    archive = raw / "wmt16_en_de.tar.gz"
    if archive.is_file():
        with tarfile.open(archive) as tar:
            tar.extractall(raw, filter="data")
        if all(path.is_file() for path in required_files(raw)):
            return raw
    missing = [path.name for path in required_files(raw) if not path.is_file()]
    sys.exit(f"error: no preprocessed WMT'16 En-De data in {raw}: expected wmt16_en_de.tar.gz or "
             f"{', '.join(missing)}. Download Google's preprocessed WMT'16 En-De archive (linked from fairseq's "
             "examples/scaling_nmt/README.md) by hand; this script never downloads.")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", required=True, help="folder with wmt16_en_de.tar.gz or its extracted files")
    parser.add_argument("--out", default="data-bin/wmt16_en_de_bpe32k", help="fairseq data-bin to write")
    parser.add_argument("--workers", type=int, default=8, help="fairseq-preprocess workers")
    args = parser.parse_args()
    folder = find_raw(args.raw)
    print(f"binarising {folder} into {args.out} ...", flush=True)
    subprocess.run([sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", SOURCE, "--target-lang", TARGET,
                    *[item for split, prefix in SPLIT_PREFIXES.items() for item in (f"--{split}pref", str(folder / prefix))],
                    "--destdir", args.out, "--nwordssrc", str(DICTIONARY_SIZE), "--nwordstgt", str(DICTIONARY_SIZE),
                    "--joined-dictionary", "--workers", str(args.workers)], check=True)
    print(f"done: export WMT16_EN_DE_DATA_BIN={Path(args.out).resolve()}")


if __name__ == "__main__":
    main()
