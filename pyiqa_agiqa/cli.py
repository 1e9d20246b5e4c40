"""``pyiqa-agiqa``: the plugin's command line.

    pyiqa-agiqa score ipce -t image.png --prompt "a red fox"      score one image
    pyiqa-agiqa score ipce -t folder/ --prompt "..." -o scores.csv  every image of a folder
    pyiqa-agiqa score ipce --csv list.csv -o scores.csv             CSV with image,prompt
    pyiqa-agiqa train -opt options/ipce_agiqa3k.yml                 pyiqa's training loop
    pyiqa-agiqa train-nsplits -opt options/ipce_agiqa3k.yml         10 splits, mean / std
    pyiqa-agiqa demo                                                the embedded demo
    pyiqa-agiqa prepare agiqa3k --data data.csv -o meta.csv         build a meta-info CSV
    pyiqa-agiqa prepare aigciqa2023 --release ./AIGCIQA2023 -o m.csv  (from the release folder)
    pyiqa-agiqa download agiqa3k --dest ./datasets                  images from a public mirror
    pyiqa-agiqa convert-weights --trust-pickle old.pth -o w.safetensors   tensors-only copy of a trusted file
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

import yaml


def _parse_set(pairs: List[str]) -> dict:
    out = {}
    for pair in pairs or []:
        if '=' not in pair:
            raise SystemExit(f'--set expects key=value, got {pair!r}')
        key, value = pair.split('=', 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def cmd_score(args) -> int:
    import pandas as pd
    import pyiqa

    import pyiqa_agiqa  # noqa: F401  (adds the metric entries)
    from pyiqa_agiqa.scoring import items_from_csv, items_from_target, score_items

    if args.output and os.path.exists(args.output) and not args.overwrite:
        raise SystemExit(f'{args.output} exists; pass --overwrite to replace it')
    if (args.target is None) == (args.csv is None):
        raise SystemExit('give exactly one of -t/--target (file or folder, with --prompt) or --csv')
    items = items_from_csv(args.csv) if args.csv else items_from_target(args.target, args.prompt)
    options = _parse_set(args.set)
    if args.weights:
        options['pretrained_model_path'] = args.weights
    if args.random_weights:
        options['pretrained'] = False
    metric = pyiqa.create_metric(args.metric, device=args.device, **options)
    scores = score_items(metric, items, batch_size=args.batch_size, progress=not args.quiet)
    table = pd.DataFrame({'image': [p for p, _ in items], 'prompt': [p for _, p in items], args.metric: scores})
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        table.to_csv(args.output, index=False)
        print(f'{len(table)} scores written to {args.output}')
    else:
        for path, score in zip(table['image'], table[args.metric]):
            print(f'{path}\t{score:.4f}')
    return 0


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
        raise SystemExit('error: convert-weights runs code from the input file; pass --trust-pickle if (and only if) '
                         'you trust where it comes from')
    if os.path.exists(args.output) and not args.overwrite:
        raise SystemExit(f'error: {args.output} exists; pass --overwrite to replace it')
    print(f'tensors written to {convert_trusted_checkpoint(args.input, args.output, key=args.key)}')
    return 0


def cmd_demo(args) -> int:
    from pyiqa_agiqa.demo.run import format_report, run_demo

    print(format_report(run_demo(args.workdir, epochs=args.epochs, n_prompts=args.prompts, overwrite=args.overwrite)))
    return 0


def cmd_prepare(args) -> int:
    import pandas as pd

    from pyiqa_agiqa.data.prepare import prepare_meta_info

    extra = {'duplicate_policy': args.duplicate_policy} if args.duplicate_policy else {}
    warnings = prepare_meta_info(args.dataset, args.output, data=args.data, release=args.release,
                                 splits=args.splits_csv, overwrite=args.overwrite, **extra)
    for warning in warnings:
        print(f'warning: {warning}', file=sys.stderr)
    print(f'{len(pd.read_csv(args.output))} rows written to {args.output}')
    return 0


def cmd_download(args) -> int:
    from pyiqa_agiqa.data.download import download_dataset

    print(f'unpacked into {download_dataset(args.dataset, args.dest)}')
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='pyiqa-agiqa', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)

    score = sub.add_parser('score', help='score images with their prompts')
    score.add_argument('metric', help='metric name, e.g. ipce (see pyiqa.list_models())')
    score.add_argument('-t', '--target', help='an image file or a folder of images')
    score.add_argument('--prompt', help='the prompt of the image(s) given with --target')
    score.add_argument('--csv', help='CSV with columns image,prompt (paths relative to the CSV)')
    score.add_argument('-o', '--output', help='write a CSV (image,prompt,score) instead of printing')
    score.add_argument('--overwrite', action='store_true', help='replace an existing --output file')
    score.add_argument('--weights', help='fine-tuned network weights (pyiqa checkpoint, e.g. net_best.pth)')
    score.add_argument('--random-weights', action='store_true', help='random initialisation (pretrained=False)')
    score.add_argument('--set', action='append', metavar='KEY=VALUE',
                       help='network option, e.g. --set clip_pretrained=/path/to/open_clip_pytorch_model.bin')
    score.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ... (default: cuda if available)')
    score.add_argument('--batch-size', type=int, default=8, help='images per forward pass (same-size images)')
    score.add_argument('-q', '--quiet', action='store_true', help='no progress bar')

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
    prepare.add_argument('--splits-csv', help='optional published split manifest to include')
    prepare.add_argument('--duplicate-policy', choices=['drop', 'corroborated', 'first', 'last'],
                         help="agiqa1k: what to do with the duplicated name (default 'drop')")
    prepare.add_argument('-o', '--output', required=True, help='meta-info CSV to write')
    prepare.add_argument('--overwrite', action='store_true', help='replace an existing output file')

    convert = sub.add_parser('convert-weights', help='turn a trusted pickled checkpoint into tensors-only weights')
    convert.add_argument('input', help='a checkpoint that needs pickle execution (.pth, .pt, TorchScript)')
    convert.add_argument('-o', '--output', required=True, help='output file (.safetensors recommended, or .pth)')
    convert.add_argument('--trust-pickle', action='store_true', help='required: loading the input runs its code')
    convert.add_argument('--key', default='params', help="key of the state dict inside the file (default 'params')")
    convert.add_argument('--overwrite', action='store_true', help='replace an existing output file')

    download = sub.add_parser('download', help='fetch dataset images from a public mirror (online only)')
    download.add_argument('dataset', choices=['agiqa1k', 'agiqa3k', 'aigciqa2023', 'pku_i2iqa', 'aigiqa20k'])
    download.add_argument('--dest', default='./datasets', help='folder to unpack into')
    return parser


def _one_line_errors():
    """Error types printed as one line (their messages name the problem and the fix)."""
    from pyiqa_agiqa.errors import OptionError, TrainingError
    from pyiqa_agiqa.weights import UnsafeWeightsError, WeightsFormatError

    return (OptionError, TrainingError, UnsafeWeightsError, WeightsFormatError, FileNotFoundError)


def _run(command, *args) -> int:
    try:
        return command(*args)
    except _one_line_errors() as error:
        from pyiqa_agiqa.training.distributed import rank

        prefix = f'[rank {rank()}] ' if rank() else ''
        print(f'{prefix}error: {" ".join(str(error).split())}', file=sys.stderr, flush=True)
        return 1


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv and argv[0] in ('train', 'train-nsplits'):
        return _run(cmd_train, argparse.Namespace(command=argv[0]), argv[1:])
    args = parser.parse_args(argv)
    commands = {'score': cmd_score, 'demo': cmd_demo, 'prepare': cmd_prepare, 'download': cmd_download,
                'convert-weights': cmd_convert_weights}
    return _run(commands[args.command], args)


if __name__ == '__main__':
    sys.exit(main())
