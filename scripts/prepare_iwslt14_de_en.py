#!/usr/bin/env python
"""Prepare IWSLT'14 German-English for the translation runs (Table 2, the over-fitting result),
following fairseq's examples/translation/prepare-iwslt14.sh step by step, then binarise it with
fairseq-preprocess as fairseq's README does:

  1. training text: train.tags.de-en.{de,en} without the <url>, <talkid>, <keywords> lines and the
     <title>/<description> tags; Moses tokenisation (sacremoses, the Python port of tokenizer.perl);
     pairs kept if both sides have 1-175 tokens and a length ratio <= 1.5 (clean-corpus-n.perl);
     lowercased;
  2. valid/test text: the <seg> lines of IWSLT14.TED*.xml (curly apostrophes made straight),
     tokenised and lowercased the same way;
  3. valid = every 23rd training pair, train = the rest; test = dev2010 + TEDX dev2012 + tst2010-2012;
  4. a joint BPE of 10,000 merges learned on train (subword-nmt), applied to every split;
  5. fairseq-preprocess --source-lang de --target-lang en into the data-bin.

Nothing is downloaded: put the IWSLT'14 archive de-en.tgz (the "2014-01/texts/de/en" release of the
IWSLT evaluation campaign, https://wit3.fbk.eu) or its extracted de-en/ folder in --raw. Needs
`pip install sacremoses subword-nmt` (not in requirements.txt: only this script uses them).

    python scripts/prepare_iwslt14_de_en.py --raw /datasets/raw/iwslt14 --out /datasets/fairseq/iwslt14.tokenized.de-en
    export IWSLT14_DE_EN_DATA_BIN=/datasets/fairseq/iwslt14.tokenized.de-en
"""
import argparse
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SOURCE, TARGET = "de", "en"
TRAIN_TAGS = "train.tags.de-en.{lang}"
TEST_SETS = ["IWSLT14.TED.dev2010", "IWSLT14.TEDX.dev2012", "IWSLT14.TED.tst2010", "IWSLT14.TED.tst2011",
             "IWSLT14.TED.tst2012"]
SKIPPED_TAGS = ("<url>", "<talkid>", "<keywords>")
REMOVED_TAGS = re.compile(r"</?(title|description)>")
MIN_LEN, MAX_LEN, RATIO, VALID_EVERY, BPE_MERGES = 1, 175, 1.5, 23, 10000


def required_files(folder):
    names = [TRAIN_TAGS.format(lang=lang) for lang in (SOURCE, TARGET)]
    names += [f"{name}.de-en.{lang}.xml" for name in TEST_SETS for lang in (SOURCE, TARGET)]
    return [Path(folder) / name for name in names]


def find_raw(raw):
    """The folder holding the extracted IWSLT'14 de-en files (extracting de-en.tgz if needed), or
    exit with a message naming what is missing."""
    raw = Path(raw)
    for folder in (raw / "de-en", raw):
        if all(path.is_file() for path in required_files(folder)):
            return folder
    archive = raw / "de-en.tgz"
    if archive.is_file():
        with tarfile.open(archive) as tar:
            tar.extractall(raw, filter="data")
        return find_raw(raw)
    missing = [path.name for path in required_files(raw / "de-en") if not path.is_file()]
    sys.exit(f"error: no IWSLT'14 de-en data in {raw}: expected de-en.tgz or de-en/ with {', '.join(missing[:3])} "
             f"... ({len(missing)} files missing). Download the IWSLT 2014 de-en texts (https://wit3.fbk.eu, "
             "2014-01/texts/de/en/de-en.tgz) by hand; this script never downloads.")


def tools():
    try:
        from sacremoses import MosesTokenizer
        from subword_nmt.apply_bpe import BPE
        from subword_nmt.learn_bpe import learn_bpe
    except ImportError as error:
        sys.exit(f"error: {error}. This script needs `pip install sacremoses subword-nmt` (Moses tokenisation "
                 "and BPE, as fairseq's prepare-iwslt14.sh uses)")
    return MosesTokenizer, BPE, learn_bpe


def tokenizer(MosesTokenizer, lang):
    moses = MosesTokenizer(lang=lang)
    return lambda line: moses.tokenize(line, return_str=True, escape=True)


def train_lines(folder, lang):
    for line in (folder / TRAIN_TAGS.format(lang=lang)).read_text(encoding="utf-8").splitlines():
        if not any(tag in line for tag in SKIPPED_TAGS):
            yield REMOVED_TAGS.sub("", line).strip()


def xml_segments(path):
    for line in path.read_text(encoding="utf-8").splitlines():
        if "<seg id" in line:
            text = re.sub(r'<seg id="[0-9]*">\s*', "", line)
            yield re.sub(r"\s*</seg>\s*", "", text).replace("\u2019", "'").strip()


def clean(pairs):
    """clean-corpus-n.perl -ratio 1.5 ... 1 175: both sides 1-175 tokens, length ratio <= 1.5."""
    for source, target in pairs:
        a, b = len(source.split()), len(target.split())
        if MIN_LEN <= a <= MAX_LEN and MIN_LEN <= b <= MAX_LEN and a / b <= RATIO and b / a <= RATIO:
            yield source, target


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", required=True, help="folder with de-en.tgz or the extracted de-en/")
    parser.add_argument("--out", default="data-bin/iwslt14.tokenized.de-en", help="fairseq data-bin to write")
    parser.add_argument("--text", default=None, help="folder for the tokenised BPE text (default: a temporary one)")
    parser.add_argument("--workers", type=int, default=4, help="fairseq-preprocess workers")
    args = parser.parse_args()
    folder = find_raw(args.raw)
    MosesTokenizer, BPE, learn_bpe = tools()
    text = Path(args.text or tempfile.mkdtemp(prefix="iwslt14-"))
    text.mkdir(parents=True, exist_ok=True)
    tokenize = {lang: tokenizer(MosesTokenizer, lang) for lang in (SOURCE, TARGET)}

    print("tokenising the training text ...", flush=True)
    pairs = zip(*(map(tokenize[lang], train_lines(folder, lang)) for lang in (SOURCE, TARGET)))
    pairs = [(s.lower(), t.lower()) for s, t in clean(pairs)]
    splits = {"train": [p for i, p in enumerate(pairs, 1) if i % VALID_EVERY],
              "valid": [p for i, p in enumerate(pairs, 1) if not i % VALID_EVERY]}
    print("tokenising the test sets ...", flush=True)
    test = {lang: [tokenize[lang](line).lower() for name in TEST_SETS
                   for line in xml_segments(folder / f"{name}.de-en.{lang}.xml")] for lang in (SOURCE, TARGET)}
    splits["test"] = list(zip(test[SOURCE], test[TARGET]))

    print(f"learning a joint BPE of {BPE_MERGES} merges ...", flush=True)
    joint = "".join(f"{s}\n{t}\n" for s, t in splits["train"])
    codes = text / "code"
    with open(codes, "w", encoding="utf-8") as out:
        learn_bpe(joint.splitlines(keepends=True), out, BPE_MERGES)
    with open(codes, encoding="utf-8") as handle:
        bpe = BPE(handle)
    for split, split_pairs in splits.items():
        for column, lang in enumerate((SOURCE, TARGET)):
            lines = (bpe.process_line(pair[column] + "\n") for pair in split_pairs)
            (text / f"{split}.{lang}").write_text("".join(lines), encoding="utf-8")
        print(f"  {split}: {len(split_pairs)} pairs", flush=True)

    print(f"binarising into {args.out} ...", flush=True)
    subprocess.run([sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", SOURCE, "--target-lang", TARGET,
                    "--trainpref", str(text / "train"), "--validpref", str(text / "valid"),
                    "--testpref", str(text / "test"), "--destdir", args.out, "--workers", str(args.workers)],
                   check=True)
    print(f"done: export IWSLT14_DE_EN_DATA_BIN={Path(args.out).resolve()}")


if __name__ == "__main__":
    main()
