"""Generate the images of a comparison with diffusers: every prompt of a prompt set x every seed x
every model, in the layout ``pyiqa-agiqa compare --table`` reads.

    pip install diffusers transformers accelerate        # not dependencies of pyiqa-agiqa
    pyiqa-agiqa prompts agiqa3k -o prompts.csv
    python scripts/generate_with_diffusers.py --prompts prompts.csv --out gen --seeds 0 1 \\
        --model sd15=stable-diffusion-v1-5/stable-diffusion-v1-5 \\
        --model sdxl=stabilityai/stable-diffusion-xl-base-1.0
    pyiqa-agiqa compare ipce --table gen/generations.csv --out cmp --weights ...

Writes ``OUT/<model>/<prompt_id>_s<seed>.png`` and ``OUT/generations.csv`` with the columns
``model, image, prompt, prompt_id, seed, category``; the image paths are relative to OUT, the
table's folder, which is where ``compare --table`` resolves relative paths. Each image is made by
``AutoPipelineForText2Image`` with its own ``torch.Generator(device).manual_seed(seed)``, so that
every model draws from the same seeds and a rerun gives the same images. A rerun skips the images
that exist (a killed run continues); the table lists the images that exist and is rewritten after
each model. The prompts CSV is read as ``pyiqa-agiqa prompts`` writes it (``prompt_id, prompt``,
optional ``category``; a cell it made spreadsheet-safe with a leading ``'`` is read back as the
original text); the table is written with the prompts as they are (``compare`` reads its input
byte for byte).

Not run in this repository's tests or CI (no diffusers, no weights, no GPU there): the reading,
the file names and the table are tested (tests/compare/test_generate_script.py).
"""

import argparse
import csv
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyiqa_agiqa.compare.inputs import check_model_name  # noqa: E402
from pyiqa_agiqa.errors import OptionError  # noqa: E402
from pyiqa_agiqa.scoring.output import from_spreadsheet_safe  # noqa: E402

COLUMNS = ['model', 'image', 'prompt', 'prompt_id', 'seed', 'category']
UNSAFE = re.compile(r'[^A-Za-z0-9._-]')


def read_prompts(path):
    """The rows of a prompts CSV (``prompt_id, prompt[, category]``) as dicts, text as written
    before ``pyiqa-agiqa prompts`` made it spreadsheet-safe."""
    with open(path, newline='', encoding='utf-8-sig') as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {'prompt_id', 'prompt'} <= set(rows[0]):
        raise SystemExit(f'{path}: expected a CSV with the columns prompt_id, prompt[, category] '
                         '(pyiqa-agiqa prompts NAME -o prompts.csv writes one)')
    out = [{k: from_spreadsheet_safe(row.get(k) or '') for k in ('prompt_id', 'prompt', 'category')} for row in rows]
    ids = [row['prompt_id'] for row in out]
    if len(set(ids)) != len(ids) or not all(ids) or not all(row['prompt'].strip() for row in out):
        raise SystemExit(f'{path}: every row needs a prompt and its own prompt_id')
    return out


def plan(prompts, models, seeds):
    """One row per (model, prompt, seed), in that order: the table's columns, ``image`` relative
    to OUT (``<model>/<prompt_id>_s<seed>.png``, characters other than letters, digits and
    ``. _ -`` of the id replaced by ``_``)."""
    stems = [UNSAFE.sub('_', p['prompt_id']) for p in prompts]
    if len(set(stems)) != len(stems):
        raise SystemExit('two prompt_ids give the same file name once characters other than letters, digits and '
                         '. _ - are replaced by _; make the ids distinct')
    return [dict(model=check_model_name(model, '--model'), image=f'{model}/{stem}_s{seed}.png', prompt=p['prompt'],
                 prompt_id=p['prompt_id'], seed=seed, category=p['category'])
            for model in models for p, stem in zip(prompts, stems) for seed in seeds]


def write_table(rows, out):
    """``OUT/generations.csv``: the rows whose image exists, written to a temporary file and renamed."""
    path = os.path.join(out, 'generations.csv')
    with open(path + '.tmp', 'w', newline='', encoding='utf-8') as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(row for row in rows if os.path.isfile(os.path.join(out, row['image'])))
    os.replace(path + '.tmp', path)
    return path


def load_pipeline(repo, device, dtype):
    import torch
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(repo, torch_dtype=getattr(torch, dtype))
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def generate(rows, repos, out, device='cuda', dtype='float16', steps=None, guidance=None):
    """Make every missing image of ``rows``, model by model (``repos``: {model: diffusers repo or
    folder}), rewriting the table after each model."""
    import torch

    for model, repo in repos.items():
        todo = [r for r in rows if r['model'] == model and not os.path.isfile(os.path.join(out, r['image']))]
        if todo:
            pipe = load_pipeline(repo, device, dtype)
            extra = {k: v for k, v in (('num_inference_steps', steps), ('guidance_scale', guidance)) if v is not None}
            os.makedirs(os.path.join(out, model), exist_ok=True)
            for n, row in enumerate(todo, start=1):
                generator = torch.Generator(device).manual_seed(int(row['seed']))
                image = pipe(row['prompt'], generator=generator, **extra).images[0]
                path = os.path.join(out, row['image'])
                image.save(path + '.tmp.png')
                os.replace(path + '.tmp.png', path)
                print(f'{model}: {n}/{len(todo)} {row["image"]}', file=sys.stderr, flush=True)
            del pipe
            if device.startswith('cuda'):
                torch.cuda.empty_cache()
        write_table(rows, out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--prompts', required=True, help='prompts CSV (prompt_id, prompt[, category])')
    parser.add_argument('--model', action='append', required=True, metavar='NAME=REPO',
                        help='a model name (as compare shows it) and its diffusers repository or folder; repeat')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--out', required=True, help='folder of the images and generations.csv')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--dtype', default='float16', choices=['float16', 'bfloat16', 'float32'])
    parser.add_argument('--steps', type=int, help="inference steps (default: the pipeline's)")
    parser.add_argument('--guidance', type=float, help="guidance scale (default: the pipeline's)")
    args = parser.parse_args(argv)
    repos = dict(spec.split('=', 1) for spec in args.model if '=' in spec)
    if len(repos) != len(args.model):
        raise SystemExit('--model expects NAME=REPO, e.g. --model sd15=stable-diffusion-v1-5/stable-diffusion-v1-5')
    try:
        rows = plan(read_prompts(args.prompts), list(repos), args.seeds)
    except OptionError as error:
        raise SystemExit(f'error: {error}') from None
    os.makedirs(args.out, exist_ok=True)
    generate(rows, repos, args.out, args.device, args.dtype, args.steps, args.guidance)
    print(f'{os.path.join(args.out, "generations.csv")}: {len(rows)} images', file=sys.stderr)


if __name__ == '__main__':
    main()
