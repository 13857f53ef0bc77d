"""Regenerates the example images of datasets/synthetic.md (datasets/img/synthetic_{hand,body}.png).

Usage: python examples/make_synthetic_figures.py [--out datasets/img] [--seed 0]
"""

import argparse

from synpose_keras.datasets.synthetic.figures import save_contact_sheets

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="datasets/img", help="Output folder.")
    parser.add_argument("--seed", type=int, default=0, help="Benchmark seed.")
    args = parser.parse_args()
    for path in save_contact_sheets(args.out, args.seed):
        print("wrote", path)
