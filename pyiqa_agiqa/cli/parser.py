"""The ``pyiqa-agiqa`` argument parser: every command and its options, one-line usage errors."""

from __future__ import annotations

import argparse
from typing import List

import yaml

from pyiqa_agiqa.errors import OptionError

USAGE = """the pyiqa-agiqa command line: scoring, training, benchmarks, datasets and weights.

    pyiqa-agiqa score ipce -t image.png --prompt "a red fox"      score one image
    pyiqa-agiqa score ipce cianet -t folder/ -o scores.csv          every image, prompts read from the files
    pyiqa-agiqa score ipce --csv list.csv -o scores.csv --resume    CSV with image,prompt; continue a run
    pyiqa-agiqa train -opt options/ipce_agiqa3k.yml                 train one split (resumable)
    pyiqa-agiqa train-nsplits -opt options/ipce_agiqa3k.yml         every split, then mean / std
    pyiqa-agiqa benchmark -opt A.yml B.yml --splits 1 2 --out bench  every file x split, tables, plots, weights
    pyiqa-agiqa compare ipce --models base=gen/base ft=gen/ft --out cmp  models paired by prompt, CIs, report
    pyiqa-agiqa prompts agiqa3k -o prompts.csv                      a prompt set to generate images from
    pyiqa-agiqa demo --workdir /tmp/agiqa_demo                      train a tiny IPCE on generated data (CPU)
    pyiqa-agiqa prepare agiqa3k --data data.csv -o meta.csv         build a meta-info CSV
    pyiqa-agiqa prepare aigciqa2023 --release ./AIGCIQA2023 -o m.csv  (from the release folder)
    pyiqa-agiqa download agiqa3k --dest ./datasets                  images from a public mirror
    pyiqa-agiqa export experiments/NAME -o weights/NAME             weights.safetensors + model card
    pyiqa-agiqa push weights/NAME org/repo                          upload to the Hugging Face hub
    pyiqa-agiqa convert-reference --from cianet-ref ckpt.pt -o weights/cianet  authors' checkpoint -> folder
    pyiqa-agiqa convert-pickle --trust-pickle old.pth -o w.safetensors  tensors-only copy of a trusted pickle

Splits are numbered from 1 everywhere (split N: split_index N, runs NAME_SplitNN).
Exit status: 0 done; 1 done, but some rows / runs / splits failed (each named); 2 an error
(one line naming the fix); 3 a bug (traceback); 130 interrupted. Standard output carries only
results (printed scores, --plan, the demo's report); progress, notes, warnings, the closing
summary and errors go to standard error.
"""
RENAMED = {'convert': 'convert-reference', 'convert-weights': 'convert-pickle'}  # old name -> new name
DATASETS = ['agiqa1k', 'agiqa3k', 'aigciqa2023', 'pku_i2iqa', 'aigiqa20k']


def parse_set(pairs: List[str]) -> dict:
    out = {}
    for pair in pairs or []:
        if '=' not in pair:
            raise OptionError(f'--set expects KEY=VALUE (e.g. --set min_side=768), got {pair!r}')
        key, value = pair.split('=', 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that say where to find the usage."""

    def error(self, message):
        self.exit(2, f'error: {message} (usage: {self.prog} --help)\n')


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog='pyiqa-agiqa', description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for add_command in (add_score, add_compare, add_prompts, add_train, add_benchmark, add_demo, add_prepare,
                        add_download, add_export, add_push, add_convert_reference, add_convert_pickle):
        add_command(commands)
    return parser


class _ShowDefaults(argparse.HelpFormatter):
    """Help lines that end with ``(default: X)`` where an option has a default value."""

    def _get_help_string(self, action):
        text = action.help or ''
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings \
                and '(default' not in text:
            text += ' (default: %(default)s)'
        return text


def _command(commands, name: str, summary: str) -> argparse.ArgumentParser:
    """A command whose --help repeats its summary and shows its defaults."""
    return commands.add_parser(name, help=summary, description=summary, formatter_class=_ShowDefaults)


def add_score(commands) -> None:
    score = _command(commands, 'score', 'score images with their prompts (one or several metrics)')
    score.add_argument('metric', nargs='+', help='metric name(s), e.g. ipce cianet cianet_consistency')
    _add_score_sources(score)
    _add_score_model(score)
    _add_score_run(score)
    _add_score_ray(score)


def _add_score_sources(score) -> None:
    score.add_argument('-t', '--target', help='an image file or a folder of images')
    score.add_argument('--prompt', help="the prompt of the image(s) given with --target (by default each image's "
                                        'prompt embedded by its generator: A1111, ComfyUI, InvokeAI, NovelAI, EXIF; '
                                        'else its sidecar caption image.txt / image.caption)')
    score.add_argument('--csv', help='CSV with columns image[,prompt] (paths relative to the CSV; an empty prompt '
                                     'is read from the image)')
    score.add_argument('-o', '--output', help='write CSV (or .jsonl) rows as they are computed instead of printing')
    score.add_argument('--resume', action='store_true', help='continue an output: skip the images already scored')
    score.add_argument('--overwrite', action='store_true', help='replace an existing --output file')
    score.add_argument('--max-pixels', type=int, metavar='N',
                       help="refuse (as the row's error) images declaring more than N pixels: decompression bombs "
                            "(by default PIL's limit, 89478485; 0: none)")


def _add_score_model(score, seed_help: str = 'seed for random weights and random views') -> None:
    score.add_argument('--weights', action='append', metavar='[METRIC=]SPEC',
                       help='fine-tuned weights: an exported folder, a .safetensors / .pth file, hf://org/repo@rev/'
                            'path or a named entry; METRIC=SPEC for one metric of several')
    score.add_argument('--random-weights', action='store_true', help='random initialisation (pretrained=False)')
    score.add_argument('--allow-untrained', action='store_true',
                       help='score an output whose head / prompts need fine-tuned weights without them (meaningless '
                            'scores; refused by default)')
    score.add_argument('--seed', type=int, default=0, help=seed_help)
    score.add_argument('--set', action='append', metavar='KEY=VALUE',
                       help='network option for every metric whose network takes it, e.g. '
                            '--set clip_pretrained=/path/to/open_clip_pytorch_model.bin')
    score.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ... (by default cuda if available)')
    score.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'],
                       help='fp32 (default, the reference) or bf16 / fp16 CLIP towers (faster; see docs/speed.md)')
    score.add_argument('--compile', nargs='?', const='default', choices=['default', 'reduce-overhead', 'max-autotune'],
                       help='torch.compile the CLIP towers (optionally a mode; off by default: see docs/speed.md)')


def add_compare(commands) -> None:
    compare = _command(commands, 'compare', 'compare generators / checkpoints: their images scored, paired by '
                                            'prompt, bootstrap intervals, paired tests, a report (resumable)')
    compare.add_argument('metric', nargs='+', help="metric name(s): the plugin's (ipce cianet_consistency ...) or "
                                                   "pyiqa's own no-reference ones (they ignore the prompt)")
    compare.add_argument('--models', nargs='+', metavar='NAME=PATH',
                         help="one folder of images per model (each image's prompt read from its file, as score "
                              'does), or a CSV per model (image, prompt[, prompt_id, seed, category])')
    compare.add_argument('--table', help='one CSV: model, image, prompt; optional prompt_id, seed, category (paths '
                                         'relative to the CSV)')
    compare.add_argument('--out', required=True, help='folder of the comparison (the same one continues it)')
    compare.add_argument('--overwrite', action='store_true',
                         help='write into a folder holding other files, and score every image again')
    compare.add_argument('--bootstrap', type=positive_int, default=10000, help='bootstrap resamples of the prompts')
    _add_score_model(compare, 'seed of the bootstrap (the same figures on every run) and of random weights')
    compare.add_argument('--max-pixels', type=int, metavar='N', help='as score --max-pixels')
    _add_score_run(compare)
    compare.add_argument('--actors', type=positive_int, default=1, help='--engine ray: metric actors')
    compare.add_argument('--gpus-per-actor', type=float, default=0.0, help='--engine ray: GPUs per actor')
    compare.add_argument('--threads-per-actor', type=positive_int, help='--engine ray: torch threads per CPU actor')


def add_prompts(commands) -> None:
    prompts = _command(commands, 'prompts', 'write a prompt set to generate images from (prompt_id, prompt, '
                                            'category)')
    prompts.add_argument('name', choices=['agiqa3k', 'parti'],
                         help="agiqa3k: AGIQA-3K's 300 prompts (bundled, MIT); parti: PartiPrompts, read from your "
                              'copy of PartiPrompts.tsv (--from)')
    prompts.add_argument('-o', '--output', required=True, help='CSV to write')
    prompts.add_argument('--from', dest='source', help='parti: the PartiPrompts.tsv file (github.com/google-research/'
                                                       'parti, Apache-2.0)')
    prompts.add_argument('--overwrite', action='store_true', help='replace an existing output file')


def _add_score_run(score) -> None:
    score.add_argument('--batch-size', type=positive_int, default=8,
                       help='images per forward pass (images of the same size are batched together)')
    score.add_argument('--workers', type=int, default=2,
                       help='image decoding processes (DataLoader workers; 0: decode in the main process)')
    score.add_argument('-q', '--quiet', action='store_true', help='no progress bar')
    score.add_argument('--engine', choices=['local', 'ray'], default='local',
                       help='local (this process) or ray (Ray Data: CPU decode tasks, a GPU actor pool)')


def _add_score_ray(score) -> None:
    score.add_argument('--input', help='--engine ray: a folder, a .csv / .parquet / .jsonl table of image[,prompt] '
                                       'rows (any pyarrow filesystem), or WebDataset .tar shards (glob or .txt list)')
    score.add_argument('--actors', type=positive_int, default=1, help='--engine ray: metric actors')
    score.add_argument('--gpus-per-actor', type=float, default=0.0, help='--engine ray: GPUs per actor (e.g. 1)')
    score.add_argument('--threads-per-actor', type=positive_int,
                       help="--engine ray: torch threads per CPU actor (by default the cluster's CPUs / --actors)")
    score.add_argument('--format', choices=['parquet', 'csv'], default='parquet',
                       help='--engine ray: format of the part files in --output')


TRAIN_HELP = {
    'train': "train one split with the plugin's resumable training loop (pyiqa's option files and arguments: "
             '-opt FILE, --auto_resume, --force_yml ...; see train --help)',
    'train-nsplits': 'train every split of the option file (split_num) one after the other, then a mean / std '
                     'table (same arguments as train; see train-nsplits --help)',
}


def add_train(commands) -> None:
    """train / train-nsplits: their arguments are parsed by the training code (as pyiqa/train.py)."""
    for name, summary in TRAIN_HELP.items():
        commands.add_parser(name, add_help=False, help=summary)


def add_benchmark(commands) -> None:
    bench = _command(commands, 'benchmark', 'train every option file x split, then the tables, plots, predictions '
                                            'and the best weights (resumable)')
    bench.add_argument('-opt', nargs='+', required=True, metavar='FILE',
                       help='option files (the grid: method x dataset)')
    bench.add_argument('--splits', nargs='+', type=positive_int, metavar='N',
                       help="splits to run, numbered from 1 as split_index (split N runs as NAME_SplitNN; by "
                            "default every split of each file's scheme)")
    bench.add_argument('--out', help='folder of the benchmark (the same one continues it); not needed with --plan')
    bench.add_argument('--plan', action='store_true', help='print the grid (runs, epochs, images) and exit')
    bench.add_argument('--engine', choices=['local', 'ray'], default='local',
                       help='local (child processes, one per GPU) or ray (a Ray task per run; RAY_ADDRESS or local)')
    bench.add_argument('--jobs', type=positive_int,
                       help='local: runs at once (by default one per visible GPU, or 1 without GPUs)')
    bench.add_argument('--threads-per-run', type=positive_int,
                       help='torch CPU threads of each run (by default: local, the CPUs / --jobs; ray, 1); figures '
                            'are equal across engines at equal threads')
    bench.add_argument('--gpus-per-run', type=float, default=1.0,
                       help='ray: GPUs of each task (0 on a cluster without GPUs)')
    bench.add_argument('--retries', type=int, default=3, help='ray: retries of a task whose node died')
    bench.add_argument('-q', '--quiet', action='store_true', help='no progress bar')


def add_demo(commands) -> None:
    demo = _command(commands, 'demo', 'train a tiny IPCE on generated data and report SRCC / PLCC (CPU, a few '
                                      'minutes; writes about 40 MB into --workdir)')
    demo.add_argument('--workdir', default='agiqa_demo',
                      help='folder for the generated data, option file and experiment (relative: to the current '
                           'folder)')
    demo.add_argument('--epochs', type=positive_int, default=30, help='training epochs')
    demo.add_argument('--prompts', type=positive_int, default=100, help='prompts in the generated data (6 images each)')
    demo.add_argument('--overwrite', action='store_true', help='regenerate the demo data if its parameters differ')


def add_prepare(commands) -> None:
    prepare = _command(commands, 'prepare', 'build a meta-info CSV from an official release')
    prepare.add_argument('dataset', choices=DATASETS)
    prepare.add_argument('--data', '--data-csv', dest='data',
                         help='official metadata file: agiqa3k data.csv, agiqa1k AIGC_MOS_Zscore.xlsx, '
                              'aigiqa20k info_train.csv, pku_i2iqa I2IQA_annotation.xlsx')
    prepare.add_argument('--release', help='unpacked release folder (aigciqa2023, pku_i2iqa)')
    prepare.add_argument('--splits-csv', help='a split manifest applied after the shipped one: its published '
                                              'columns replace the shipped values')
    prepare.add_argument('--no-shipped-splits', action='store_true',
                         help='do not apply the split manifest shipped for the dataset (published splits)')
    prepare.add_argument('--duplicate-policy', choices=['drop', 'corroborated', 'first', 'last'],
                         help="agiqa1k: what to do with the duplicated name (by default 'drop')")
    prepare.add_argument('-o', '--output', required=True, help='meta-info CSV to write')
    prepare.add_argument('--overwrite', action='store_true', help='replace an existing output file')


def add_download(commands) -> None:
    download = _command(commands, 'download', 'fetch dataset images from a public mirror (online only)')
    download.add_argument('dataset', choices=DATASETS)
    download.add_argument('--dest', default='./datasets', help='folder to unpack into')


def add_export(commands) -> None:
    export = _command(commands, 'export', 'trained experiment -> weights.safetensors + model card (folder)')
    export.add_argument('experiment', help='experiments/NAME (a run) or the prefix of a train-nsplits run')
    export.add_argument('-o', '--output', required=True, help='folder to write (one sub-folder per split)')
    export.add_argument('--split', type=positive_int, help='only this split of a multi-split run (numbered from 1)')
    export.add_argument('--overwrite', action='store_true', help='replace a non-empty output folder')


def add_push(commands) -> None:
    push = _command(commands, 'push', 'upload an exported folder to the Hugging Face hub (needs a token)')
    push.add_argument('folder', help='an exported folder')
    push.add_argument('repo', help='org/repo on the hub (created if missing)')
    push.add_argument('--path-in-repo', help='folder inside the repository (by default the folder name)')
    push.add_argument('--revision', help='branch to commit to (by default main)')
    push.add_argument('--private', action='store_true', help='create the repository private')


def add_convert_reference(commands) -> None:
    convert = _command(commands, 'convert-reference',
                       "the authors' reference checkpoint(s) -> an exported folder the metrics load")
    convert.add_argument('--from', dest='kind', required=True, choices=['cianet-ref', 'ipce-ref', 'dcmpl-ref'],
                         help='which reference codebase wrote the checkpoint')
    convert.add_argument('inputs', nargs='+',
                         help='the checkpoint file(s) (dcmpl-ref: *_tar_best.pth [*_aux_best.pth])')
    convert.add_argument('-o', '--output', required=True, help='exported folder to write')
    convert.add_argument('--clip', help='dcmpl-ref: CLIP weights file (by default the openai tag, cached by '
                                        'open_clip)')
    convert.add_argument('--set', action='append', metavar='KEY=VALUE',
                         help='network option of the converted network when it cannot be read off the file')
    convert.add_argument('--overwrite', action='store_true', help='replace a non-empty output folder')


def add_convert_pickle(commands) -> None:
    trusted = _command(commands, 'convert-pickle',
                       'a trusted pickled checkpoint (.pth) -> a tensors-only copy (.safetensors)')
    trusted.add_argument('input', help='a checkpoint that needs pickle execution (.pth, .pt, TorchScript)')
    trusted.add_argument('-o', '--output', required=True, help='output file (.safetensors recommended, or .pth)')
    trusted.add_argument('--trust-pickle', action='store_true', help='required: loading the input runs its code')
    trusted.add_argument('--key', default='params', help='key of the state dict inside the file')
    trusted.add_argument('--overwrite', action='store_true', help='replace an existing output file')
