"""``pyiqa-agiqa``: the plugin's command line.

    pyiqa-agiqa score ipce -t image.png --prompt "a red fox"      score one image
    pyiqa-agiqa score ipce cianet -t folder/ -o scores.csv          every image, prompts read from the files
    pyiqa-agiqa score ipce --csv list.csv -o scores.csv --resume    CSV with image,prompt; continue a run
    pyiqa-agiqa train -opt options/ipce_agiqa3k.yml                 pyiqa's training loop
    pyiqa-agiqa train-nsplits -opt options/ipce_agiqa3k.yml         10 splits, mean / std
    pyiqa-agiqa demo                                                the embedded demo
    pyiqa-agiqa prepare agiqa3k --data data.csv -o meta.csv         build a meta-info CSV
    pyiqa-agiqa prepare aigciqa2023 --release ./AIGCIQA2023 -o m.csv  (from the release folder)
    pyiqa-agiqa download agiqa3k --dest ./datasets                  images from a public mirror
    pyiqa-agiqa convert-weights --trust-pickle old.pth -o w.safetensors   tensors-only copy of a trusted file
    pyiqa-agiqa export experiments/NAME -o weights/NAME             weights.safetensors + model card
    pyiqa-agiqa push weights/NAME org/repo                          upload to the Hugging Face hub
    pyiqa-agiqa convert --from cianet-ref ckpt.pt -o weights/cianet  reference code's checkpoint -> folder
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

import yaml

from pyiqa_agiqa.errors import OptionError


def _parse_set(pairs: List[str]) -> dict:
    out = {}
    for pair in pairs or []:
        if '=' not in pair:
            raise OptionError(f'--set expects KEY=VALUE (e.g. --set min_side=768), got {pair!r}')
        key, value = pair.split('=', 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _parse_weights(entries: List[str], metrics: List[str]) -> dict:
    """--weights SPEC (every metric) or --weights METRIC=SPEC (one of them)."""
    out = {}
    for entry in entries or []:
        name, sep, spec = entry.partition('=')
        if sep and name in metrics:
            out[name] = spec
        else:
            out[None] = entry
    return out


def cmd_score_ray(args, options: dict) -> int:
    from pyiqa_agiqa.ray_scoring import score_with_ray

    sources = [s for s in (args.input, args.target, args.csv) if s]
    if len(sources) != 1 or not args.output:
        raise OptionError('--engine ray needs one source (--input FOLDER|TABLE|SHARDS, or -t / --csv) and '
                          '--output DST (a folder of part files)')
    summary = score_with_ray(args.metric, sources[0], args.output, prompt=args.prompt, options=options,
                             weights=_parse_weights(args.weights, args.metric), seed=args.seed,
                             batch_size=args.batch_size, actors=args.actors, gpus_per_actor=args.gpus_per_actor,
                             threads_per_actor=args.threads_per_actor, compile_mode=args.compile, fmt=args.format,
                             overwrite=args.overwrite, allow_untrained=args.allow_untrained,
                             max_pixels=args.max_pixels)
    print(f'{summary.read} rows read, {summary.skipped} already in {args.output}, {summary.scored} scored, '
          f'{summary.failed} failed; {summary.images_per_s:.2f} images/s over {summary.seconds:.1f} s', file=sys.stderr)
    for image, error in summary.failures:
        print(f'  not scored: {image}: {error}', file=sys.stderr)
    return 1 if summary.failed else 0


def cmd_score(args) -> int:
    from pyiqa_agiqa.data.image_io import set_max_pixels
    from pyiqa_agiqa.scoring import ResultWriter, create_metrics, rows_from_csv, rows_from_target, score_rows

    if args.precision:
        args.set = list(args.set or []) + [f'precision={args.precision}']
    options = _parse_set(args.set)
    if args.random_weights:
        options['pretrained'] = False
    if args.max_pixels is not None:
        set_max_pixels(args.max_pixels)
    if args.engine == 'ray':
        return cmd_score_ray(args, options)
    if args.input:
        raise OptionError('--input is the source of --engine ray; use -t (image or folder) or --csv here')
    if (args.target is None) == (args.csv is None):
        raise OptionError('give exactly one of -t/--target (an image or a folder) or --csv (image,prompt)')
    if args.overwrite and args.resume:
        raise OptionError('--overwrite replaces the output, --resume continues it: give one')
    rows = rows_from_csv(args.csv) if args.csv else rows_from_target(args.target, args.prompt)
    metrics = create_metrics(args.metric, args.device, options, _parse_weights(args.weights, args.metric), args.seed,
                             args.compile, args.allow_untrained)
    writer = None
    if args.output:
        columns = ['image', 'prompt', 'prompt_source'] + list(metrics) + ['error']
        writer = ResultWriter(args.output, columns, overwrite=args.overwrite, resume=args.resume)

    def echo(record):
        if writer is None and not record['error']:
            print('\t'.join([record['image']] + [f'{record[m]:.4f}' for m in metrics]), flush=True)

    try:
        table = score_rows(metrics, rows, writer, batch_size=args.batch_size, progress=not args.quiet,
                           workers=args.workers, echo=echo)
    finally:
        if writer:
            writer.close()
    failed = table[table['error'] != '']
    skipped = len(rows) - len(table)
    where = f' to {args.output}' if args.output else ''
    print(f'{len(table) - len(failed)} of {len(table)} images scored{where}'
          + (f' ({skipped} already in the output)' if skipped else ''), file=sys.stderr)
    for _, row in failed.head(10).iterrows():
        print(f'  not scored: {row["image"]}: {row["error"]}', file=sys.stderr)
    if len(failed) > 10:
        print(f'  ... and {len(failed) - 10} more (the error column of the output lists them)', file=sys.stderr)
    return 1 if len(failed) else 0


def cmd_train(args, rest: List[str]) -> int:
    from pyiqa_agiqa.training import distributed
    from pyiqa_agiqa.training.nsplits import run_nsplits
    from pyiqa_agiqa.training.pipeline import run_training

    try:
        (run_nsplits if args.command == 'train-nsplits' else run_training)(rest)
    finally:
        distributed.destroy()
    return 0


def cmd_convert_weights(args) -> int:
    from pyiqa_agiqa.weights import convert_trusted_checkpoint

    if not args.trust_pickle:
        raise OptionError('convert-weights runs code from the input file; pass --trust-pickle if (and only if) '
                          'you trust where it comes from')
    if os.path.exists(args.output) and not args.overwrite:
        raise OptionError(f'{args.output} exists; pass --overwrite to replace it')
    print(f'tensors written to {convert_trusted_checkpoint(args.input, args.output, key=args.key)}')
    return 0


def cmd_demo(args) -> int:
    from pyiqa_agiqa.demo.run import format_report, run_demo

    print(format_report(run_demo(args.workdir, epochs=args.epochs, n_prompts=args.prompts, overwrite=args.overwrite)))
    return 0


def cmd_prepare(args) -> int:
    import pandas as pd

    from pyiqa_agiqa.data.prepare import prepare_meta_info

    if os.path.exists(args.output) and not args.overwrite:
        raise OptionError(f'{args.output} exists; pass --overwrite to replace it')
    extra = {'duplicate_policy': args.duplicate_policy} if args.duplicate_policy else {}
    warnings = prepare_meta_info(args.dataset, args.output, data=args.data, release=args.release,
                                 splits=args.splits_csv, overwrite=args.overwrite,
                                 shipped_splits=not args.no_shipped_splits, **extra)
    for warning in warnings:
        print(f'warning: {warning}', file=sys.stderr)
    print(f'{len(pd.read_csv(args.output))} rows written to {args.output}')
    return 0


def cmd_export(args) -> int:
    from pyiqa_agiqa.export import export_experiment

    for folder in export_experiment(args.experiment, args.output, split=args.split, overwrite=args.overwrite):
        print(f'exported to {folder}')
    return 0


def cmd_push(args) -> int:
    from pyiqa_agiqa.weight_specs import push_folder

    spec = push_folder(args.folder, args.repo, path_in_repo=args.path_in_repo, revision=args.revision,
                       private=args.private)
    print(f"uploaded; load it pinned with: create_metric(..., weights='{spec}')")
    return 0


def cmd_convert(args) -> int:
    from pyiqa_agiqa.convert_reference import convert_reference

    folder = convert_reference(args.kind, args.inputs, args.output, overwrite=args.overwrite, clip_weights=args.clip,
                               network=_parse_set(args.set) or None)
    print(f'converted into {folder}')
    return 0


def cmd_download(args) -> int:
    from pyiqa_agiqa.data.download import download_dataset

    print(f'unpacked into {download_dataset(args.dataset, args.dest)}')
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that say where to find the usage."""

    def error(self, message):
        self.exit(2, f'error: {message} (usage: {self.prog} --help)\n')


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog='pyiqa-agiqa', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)

    score = sub.add_parser('score', help='score images with their prompts (one or several metrics)')
    score.add_argument('metric', nargs='+', help="metric name(s), e.g. ipce cianet cianet_consistency")
    score.add_argument('-t', '--target', help='an image file or a folder of images')
    score.add_argument('--prompt', help="the prompt of the image(s) given with --target (default: each image's "
                                        'prompt embedded by its generator: A1111, ComfyUI, InvokeAI, NovelAI, EXIF)')
    score.add_argument('--csv', help='CSV with columns image[,prompt] (paths relative to the CSV; an empty prompt '
                                     'is read from the image)')
    score.add_argument('-o', '--output', help='write CSV (or .jsonl) rows as they are computed instead of printing')
    score.add_argument('--resume', action='store_true', help='continue an output: skip the images already scored')
    score.add_argument('--overwrite', action='store_true', help='replace an existing --output file')
    score.add_argument('--weights', action='append', metavar='[METRIC=]SPEC',
                       help='fine-tuned weights: an exported folder, a .safetensors / .pth file, hf://org/repo@rev/'
                            'path or a named entry; METRIC=SPEC for one metric of several')
    score.add_argument('--random-weights', action='store_true', help='random initialisation (pretrained=False)')
    score.add_argument('--allow-untrained', action='store_true',
                       help='score an output whose head / prompts need fine-tuned weights without them (meaningless '
                            'scores; refused by default)')
    score.add_argument('--seed', type=int, default=0, help='seed for random weights and random views (default 0)')
    score.add_argument('--set', action='append', metavar='KEY=VALUE',
                       help='network option for every metric whose network takes it, e.g. '
                            '--set clip_pretrained=/path/to/open_clip_pytorch_model.bin')
    score.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ... (default: cuda if available)')
    score.add_argument('--batch-size', type=_positive_int, default=8,
                       help='images per forward pass (consecutive images of the same size), >= 1')
    score.add_argument('--workers', type=int, default=2, help='image decoding threads (0: decode in line)')
    score.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'],
                       help='fp32 (default, the reference) or bf16 / fp16 CLIP towers (faster; see the README)')
    score.add_argument('--compile', nargs='?', const='default', choices=['default', 'reduce-overhead', 'max-autotune'],
                       help='torch.compile the CLIP towers (optionally a mode; off by default: see the README)')
    score.add_argument('--max-pixels', type=int, metavar='N',
                       help="refuse (as the row's error) images declaring more than N pixels: decompression bombs "
                            "(default: PIL's limit, 89478485; 0: none)")
    score.add_argument('-q', '--quiet', action='store_true', help='no progress bar')
    score.add_argument('--engine', choices=['local', 'ray'], default='local',
                       help='local (this process) or ray (Ray Data: CPU decode tasks, a GPU actor pool)')
    score.add_argument('--input', help='--engine ray: a folder, a .csv / .parquet / .jsonl table of image[,prompt] '
                                       'rows (any pyarrow filesystem), or WebDataset .tar shards (glob or .txt list)')
    score.add_argument('--actors', type=_positive_int, default=1, help='--engine ray: metric actors (default 1)')
    score.add_argument('--gpus-per-actor', type=float, default=0.0, help='--engine ray: GPUs per actor (e.g. 1)')
    score.add_argument('--threads-per-actor', type=_positive_int,
                       help="--engine ray: torch threads per CPU actor (default: the cluster's CPUs / --actors)")
    score.add_argument('--format', choices=['parquet', 'csv'], default='parquet',
                       help='--engine ray: format of the part files in --output (default parquet)')

    for name in ('train', 'train-nsplits'):
        sub.add_parser(name, add_help=False,
                       help="pyiqa's training (arguments as pyiqa/train.py: -opt FILE, --force_yml ...)")

    demo = sub.add_parser('demo', help='train a tiny IPCE on generated data and report SRCC/PLCC')
    demo.add_argument('--workdir', default='agiqa_demo', help='folder for data, options and experiments')
    demo.add_argument('--epochs', type=int, default=30)
    demo.add_argument('--prompts', type=int, default=100, help='prompts in the generated data (6 images each)')
    demo.add_argument('--overwrite', action='store_true', help='regenerate the demo data if its parameters differ')

    prepare = sub.add_parser('prepare', help='build a meta-info CSV from an official release')
    prepare.add_argument('dataset', choices=['agiqa1k', 'agiqa3k', 'aigciqa2023', 'pku_i2iqa', 'aigiqa20k'])
    prepare.add_argument('--data', '--data-csv', dest='data',
                         help='official metadata file: agiqa3k data.csv, agiqa1k AIGC_MOS_Zscore.xlsx, '
                              'aigiqa20k info_train.csv, pku_i2iqa I2IQA_annotation.xlsx')
    prepare.add_argument('--release', help='unpacked release folder (aigciqa2023, pku_i2iqa)')
    prepare.add_argument('--splits-csv', help='a split manifest applied after the shipped one: its published '
                                              'columns replace the shipped values')
    prepare.add_argument('--no-shipped-splits', action='store_true',
                         help='do not apply the split manifest shipped for the dataset (published splits)')
    prepare.add_argument('--duplicate-policy', choices=['drop', 'corroborated', 'first', 'last'],
                         help="agiqa1k: what to do with the duplicated name (default 'drop')")
    prepare.add_argument('-o', '--output', required=True, help='meta-info CSV to write')
    prepare.add_argument('--overwrite', action='store_true', help='replace an existing output file')

    trusted = sub.add_parser('convert-weights', help='turn a trusted pickled checkpoint into tensors-only weights')
    trusted.add_argument('input', help='a checkpoint that needs pickle execution (.pth, .pt, TorchScript)')
    trusted.add_argument('-o', '--output', required=True, help='output file (.safetensors recommended, or .pth)')
    trusted.add_argument('--trust-pickle', action='store_true', help='required: loading the input runs its code')
    trusted.add_argument('--key', default='params', help="key of the state dict inside the file (default 'params')")
    trusted.add_argument('--overwrite', action='store_true', help='replace an existing output file')

    export = sub.add_parser('export', help='trained experiment -> weights.safetensors + model card (folder)')
    export.add_argument('experiment', help='experiments/NAME (a run) or the prefix of a train-nsplits run')
    export.add_argument('-o', '--output', required=True, help='folder to write (one sub-folder per split)')
    export.add_argument('--split', type=_positive_int, help='only this split of a multi-split run (1-based)')
    export.add_argument('--overwrite', action='store_true', help='replace a non-empty output folder')

    push = sub.add_parser('push', help='upload an exported folder to the Hugging Face hub (needs a token)')
    push.add_argument('folder', help='an exported folder')
    push.add_argument('repo', help='org/repo on the hub (created if missing)')
    push.add_argument('--path-in-repo', help='folder inside the repository (default: the folder name)')
    push.add_argument('--revision', help='branch to commit to (default: main)')
    push.add_argument('--private', action='store_true', help='create the repository private')

    convert = sub.add_parser('convert', help="reference code's checkpoints -> an exported folder")
    convert.add_argument('--from', dest='kind', required=True, choices=['cianet-ref', 'ipce-ref', 'dcmpl-ref'])
    convert.add_argument('inputs', nargs='+',
                         help='the checkpoint file(s) (dcmpl-ref: *_tar_best.pth [*_aux_best.pth])')
    convert.add_argument('-o', '--output', required=True, help='exported folder to write')
    convert.add_argument('--clip', help='dcmpl-ref: CLIP weights file (default: the openai tag, cached by open_clip)')
    convert.add_argument('--set', action='append', metavar='KEY=VALUE',
                         help='network option of the converted network when it cannot be read off the file')
    convert.add_argument('--overwrite', action='store_true', help='replace a non-empty output folder')

    download = sub.add_parser('download', help='fetch dataset images from a public mirror (online only)')
    download.add_argument('dataset', choices=['agiqa1k', 'agiqa3k', 'aigciqa2023', 'pku_i2iqa', 'aigiqa20k'])
    download.add_argument('--dest', default='./datasets', help='folder to unpack into')
    return parser


EXIT_ERROR = 2  # an error of the plugin's kinds (options, prompts, weights, metadata, images, training)


def _one_line_errors():
    """Error types printed as one line (their messages name the problem and the fix); set
    PYIQA_AGIQA_TRACEBACK=1 to see the traceback instead."""
    from pyiqa_agiqa.errors import AGIQAError

    if os.environ.get('PYIQA_AGIQA_TRACEBACK'):
        return ()
    # AGIQAError: every error type of the plugin; ValueError: a wrong value met by a library
    # (yaml, pandas) on the user's input; the OSError subclasses: missing / existing / unreadable files
    return (AGIQAError, ValueError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError)


def _run(command, *args) -> int:
    try:
        return command(*args)
    except _one_line_errors() as error:
        from pyiqa_agiqa.training.distributed import rank

        prefix = f'[rank {rank()}] ' if rank() else ''
        print(f'{prefix}error: {one_line(error)}', file=sys.stderr, flush=True)
        return EXIT_ERROR


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line. An error re-raised by a DataLoader worker carries
    the worker's traceback after its message: only the message is kept."""
    text = str(error)
    marker = text.find('\nOriginal Traceback')
    if marker >= 0:  # "Caught X in DataLoader worker process N.\nOriginal Traceback ...\nX: message"
        last = text.rstrip().splitlines()[-1]
        text = last.split(': ', 1)[1] if ': ' in last else last
    return ' '.join(text.split())


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv and argv[0] in ('train', 'train-nsplits'):
        return _run(cmd_train, argparse.Namespace(command=argv[0]), argv[1:])
    args = parser.parse_args(argv)
    commands = {'score': cmd_score, 'demo': cmd_demo, 'prepare': cmd_prepare, 'download': cmd_download,
                'convert-weights': cmd_convert_weights, 'export': cmd_export, 'push': cmd_push, 'convert': cmd_convert}
    return _run(commands[args.command], args)


if __name__ == '__main__':
    sys.exit(main())
