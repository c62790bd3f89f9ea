"""Compute one method's attribution maps for the cached evaluation set.

    python generate_attributions.py --model efficientnet_lite0 --attr_method la

writes {prefix}/{model}_{method}_attributions.npy (LA: with its three parameters in the name),
float32 [N,3,224,224]. An existing output with the same images is not recomputed.
"""
from labench.compute import attributions
from labench.flows.cli import attribution_parser
from labench.errors import run_cli


def main(argv=None):
    attributions.run(attribution_parser(__doc__).parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
