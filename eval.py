"""Score one method's maps by Insertion and Deletion (docs/PROTOCOL.md "Insertion and deletion").

    python eval.py --model efficientnet_lite0 --attr_method la

reads {attr_prefix}/<stem>_attributions.npy, writes {prefix}/<stem>_scores.npz (ins, del: AUCs
of the mean curves; ins_curve, del_curve: [225, N]) and puts one row into --csv_path, replacing
an earlier row of the same model, method and parameters. The logic lives in labench.compute.scoring.
"""
from labench.compute import scoring
from labench.flows.cli import eval_parser
from labench.errors import run_cli


def main(argv=None):
    scoring.run(eval_parser(__doc__).parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
