"""Run the official query functions of EOAL, EAOA, LfOSA, MQNet and BUAL beside osal's on seeded synthetic outputs,
write the official selections as test fixtures, and print the overlap table (method x regime: mean, min).

    git clone https://github.com/bardisafa/EOAL /tmp/EOAL && git -C /tmp/EOAL checkout baadd13
    git clone https://github.com/chenchenzong/EAOA /tmp/EAOA && git -C /tmp/EAOA checkout 66cdf84
    git clone https://github.com/ningkp/LfOSA /tmp/LfOSA && git -C /tmp/LfOSA checkout 3e22f75
    git clone https://github.com/kaist-dmlab/MQNet /tmp/MQNet && git -C /tmp/MQNet checkout 77b4b5c
    git clone https://github.com/chenchenzong/BUAL /tmp/BUAL && git -C /tmp/BUAL checkout 347a4d1
    pip install --no-deps --target /tmp/finch-0.1.9 finch-clust==0.1.9     # the release EOAL's code pins
    python scripts/official_checks.py --eoal /tmp/EOAL --eaoa /tmp/EAOA --lfosa /tmp/LfOSA --mqnet /tmp/MQNet \
        --bual /tmp/BUAL --finch /tmp/finch-0.1.9

The official code is never copied here: it is imported from the given directories, in a child process each
(their modules are named `utils`, and EOAL's `finch` must be the pinned release), on the CPU (`.cuda()` and
`device='cuda'` become no-ops), fed by stand-in networks that return the synthetic outputs of
scripts/official_regimes.py in the order a SubsetRandomSampler would. The fixtures (tests/fixtures/official/)
hold only the official selections and the FINCH 0.1.9 hierarchies; tests/test_official_overlap.py regenerates
the outputs from the same seeds and checks osal's selections against them without the official code.
"""

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
from argparse import Namespace

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

import official_regimes as regimes  # noqa: E402
from osal.folders import shown  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "official")
BATCH = 128  # the official loaders' batch size


# -- the child: the official code on the CPU --------------------------------------------------------------------
def on_the_cpu() -> None:
    """The official code moves tensors to CUDA unconditionally: make every such move a no-op."""
    import torch
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    for name in ("zeros", "tensor", "ones", "zeros_like"):
        original = getattr(torch, name)

        def cpu_only(*args, _original=original, **kwargs):
            if str(kwargs.get("device", "")).startswith("cuda"):
                kwargs.pop("device")
            return _original(*args, **kwargs)
        setattr(torch, name, cpu_only)


class StandIn:
    """A network that returns precomputed outputs: a batch's data are (table, row) pairs and `tables` maps a
    table to its (outputs, features) arrays; it remembers the rows of the last batch."""

    def __init__(self, tables: dict):
        self.tables, self.last = tables, None

    def eval(self):
        return self

    def __call__(self, data):
        import torch
        table, rows = int(data[0, 0]), data[:, 1].numpy()
        self.last = rows
        outputs, features = self.tables[table]
        return torch.from_numpy(outputs[rows]), torch.from_numpy(features[rows])


class HeadStandIn:
    """EOAL's one-vs-all head, called on the features of the batch `network` just ran: its rows of `outputs`."""

    def __init__(self, network: StandIn, outputs: np.ndarray):
        self.network, self.outputs = network, outputs

    def eval(self):
        return self

    def __call__(self, features):
        import torch
        return torch.from_numpy(self.outputs[self.network.last])


def loader(table: int, rows: np.ndarray, labels: np.ndarray):
    """The official loader's batches: (index, (data, labels)), index the global row, in the given order."""
    import torch
    batches = []
    for start in range(0, len(rows), BATCH):
        part = rows[start:start + BATCH]
        data = torch.from_numpy(np.column_stack([np.full(len(part), table), part]))
        batches.append((torch.from_numpy(part), (data, torch.from_numpy(labels[part]))))
    return batches


def official_eoal(repo: str, case: regimes.Case) -> np.ndarray:
    import query_strategies
    import utils
    k = case.num_known
    pool = StandIn({0: (case.logits, case.features)})
    head = HeadStandIn(pool, case.extra["one_vs_all"])
    args = Namespace(known_class=k, query_batch=case.budget, w_unk_cls=1)
    centres = None
    if not case.first_round:
        invalid = case.invalid_features
        net = StandIn({1: (np.zeros((len(invalid), k + 1), np.float32), invalid)})
        invalid_loader = loader(1, np.arange(len(invalid)), np.full(len(invalid), k))
        centres, _, _, _ = utils.unknown_clustering(args, net, HeadStandIn(net, invalid), invalid_loader, False,
                                                    list(range(k)))
    with contextlib.redirect_stdout(io.StringIO()):
        known, unknown, _, _ = query_strategies.eoal_sampling(
            args, loader(0, case.order, case.targets), 0, pool, head, list(range(k)), False, centres, None,
            case.first_round, True)
    return np.concatenate([np.asarray(known, dtype=np.int64), np.asarray(unknown, dtype=np.int64)])


def official_eaoa(repo: str, case: regimes.Case, k1: int) -> np.ndarray:
    import query_strategies
    k = case.num_known
    labeled_features, labeled_targets = case.extra["labeled_features"], case.extra["labeled_targets"]
    reference_features, reference_targets = labeled_features, labeled_targets
    if not case.first_round:
        reference_features = np.concatenate([labeled_features, case.invalid_features])
        reference_targets = np.concatenate([labeled_targets, np.full(len(case.invalid_features), k)])
    zeros = np.zeros((len(reference_features), k + 1), np.float32)
    detector = StandIn({0: (case.logits, case.features), 1: (zeros, reference_features)})
    classifier = StandIn({0: (case.extra["classifier_logits"], case.features)})
    reference = loader(1, np.arange(len(reference_features)), reference_targets)
    args = Namespace(known_class=k, query_batch=case.budget, k1=k1)
    with contextlib.redirect_stdout(io.StringIO()):
        known, unknown, _, _ = query_strategies.eaoa_sampling(
            args, loader(0, case.order, case.targets), 0, detector, classifier, list(range(k)), False, 0,
            None if not case.first_round else reference, None if case.first_round else reference)
    return np.concatenate([np.asarray(known, dtype=np.int64), np.asarray(unknown, dtype=np.int64)])


def official_lfosa(repo: str, case: regimes.Case) -> np.ndarray:
    """LfOSA's AV_sampling_temperature (Sampling.py, what AL_center_temperature.py runs for LfOSA)."""
    import Sampling
    detector = StandIn({0: (case.features, case.logits)})  # its model returns (features, outputs)
    args = Namespace(known_class=case.num_known, query_batch=case.budget)
    with contextlib.redirect_stdout(io.StringIO()):
        known, unknown, _, _ = Sampling.AV_sampling_temperature(args, loader(0, case.order, case.targets), 0,
                                                                detector, False)
    return np.concatenate([np.asarray(known, dtype=np.int64), np.asarray(unknown, dtype=np.int64)])


class Rows:
    """A dataset whose item i is (i as the input, label i, i): stand-in networks read the row from the input."""

    def __init__(self, labels: np.ndarray):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        import torch
        return torch.tensor(i), int(self.labels[i]), i


class CSIStandIn:
    """MQNet's CSI network: the SimCLR projections of the rows asked for."""

    def __init__(self, features: np.ndarray):
        self.features = features

    def eval(self):
        return self

    def __call__(self, inputs, **kwargs):
        import torch
        return None, {"simclr": torch.from_numpy(self.features[inputs.numpy()])}


class BackboneStandIn(CSIStandIn):
    """MQNet's classifier ("backbone"): the logits of the rows asked for."""

    def __call__(self, inputs, **kwargs):
        import torch
        return torch.from_numpy(self.features[inputs.numpy()]), None


def mqnet_modules(repo: str):
    """The official `methods`, `utils` and nets/querynet.py, importable without their unused dependencies
    (prefetch_generator, torchlars, diffdist, submodlib: stubbed; nets/__init__.py names a file the repository
    lacks, so QueryNet is loaded from its own file)."""
    import importlib.abc
    import importlib.machinery
    import importlib.util
    import types

    class Stub(types.ModuleType):
        __path__ = []

        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {})

    class Stubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("prefetch_generator", "torchlars", "diffdist", "submodlib"):
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec):
            return Stub(spec.name)

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, Stubs())
    import methods
    import utils
    spec = importlib.util.spec_from_file_location("querynet", os.path.join(repo, "nets", "querynet.py"))
    querynet = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(querynet)
    return methods, utils, querynet


def official_mqnet(repo: str, case: regimes.Case) -> np.ndarray:
    """MQNet.select (mode CONF) on the pool; in a later round after the official meta_train on the previous query."""
    import torch
    from torch.utils.data import DataLoader, Subset
    from torch.utils.data.sampler import SubsetRandomSampler
    methods, utils, querynet = mqnet_modules(repo)
    k, n = case.num_known, len(case.targets)
    labeled = case.extra["labeled_features"]
    # one dataset: the pool's rows, then the labeled ones (the official labeled set is a Subset of the same data)
    features = np.concatenate([case.features, labeled])
    logits = np.concatenate([case.extra["classifier_logits"], np.zeros((len(labeled), k), np.float32)])
    data = Rows(np.concatenate([case.targets, np.zeros(len(labeled), np.int64)]))
    models = {"csi": CSIStandIn(features), "backbone": BackboneStandIn(logits)}
    args = Namespace(subset=50_000, test_batch_size=BATCH, workers=0, mqnet_mode="CONF", n_query=case.budget,
                     device="cpu", num_IN_class=k, n_class=k, steps_per_epoch=regimes.MQNET_STEPS,
                     epochs_mqnet=regimes.MQNET_EPOCHS)
    labeled_rows = list(range(n, n + len(labeled)))
    if not case.first_round:
        answers = case.extra["delta_answers"]
        delta = Rows(np.where(answers >= 0, answers, k))  # an unknown's label is beyond the known classes
        delta_models = {"csi": CSIStandIn(np.concatenate([case.extra["delta_features"], labeled])),
                        "backbone": BackboneStandIn(case.extra["delta_logits"])}
        delta_models["mqnet"] = querynet.QueryNet(input_size=2, inter_dim=64)
        optimizer = torch.optim.SGD(delta_models["mqnet"].parameters(), lr=1e-3)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[int(args.epochs_mqnet / 2)])
        labeled_in = DataLoader(Subset(Rows(np.zeros(len(answers) + len(labeled), np.int64)),
                                       list(range(len(answers), len(answers) + len(labeled)))), batch_size=BATCH)
        delta_loader = DataLoader(delta, sampler=SubsetRandomSampler(list(range(len(answers)))), batch_size=32)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            utils.meta_train(args, delta_models, {"mqnet": optimizer}, {"mqnet": scheduler},
                             torch.nn.CrossEntropyLoss(reduction="none"), labeled_in, None, delta_loader)
        models["mqnet"] = delta_models["mqnet"]
    method = methods.MQNet(args, models, data, list(range(n)), I_index=labeled_rows,
                           cur_cycle=0 if case.first_round else 1)
    with contextlib.redirect_stdout(io.StringIO()):
        chosen, _ = method.select()
    return np.asarray(chosen, dtype=np.int64)


def bual_statements(repo: str) -> list:
    """The statements of the official main.py that turn the networks' outputs into BUAL's selection (the official
    scoring is inline there, not a function): the auxiliary network's screening of the pool, the exclusion of
    what it predicts unknown, the three uncertainty types, the weighting by the auxiliary probability and the
    sort. Found by what they do, not by line number."""
    import ast
    import textwrap
    path = os.path.join(repo, "ECCV2024_BUAL_code", "main.py")
    source = open(path).read()
    tree = ast.parse(source)
    wanted = {
        "screen": lambda s: s.startswith("Aux_prob = np.asarray(Aux_prob)") or s.startswith("pred_openset = []")
        or s.startswith("Aux_prob2 = []") or s.startswith("for i in range(len(Aux_ind))"),
        "exclude": lambda s: s.startswith("if known_openset_ind != []:") and "pred_openset" in s
        and "Aux_net" not in s,
        "types": lambda s: s.startswith("if args.type == 1:"),
        "weigh": lambda s: s.startswith("if known_openset_ind != []:") and "temp3" in s and "NL_train" not in s,
        "sort": lambda s: s.startswith("sel_pseudo_ind = np.asarray(query_idx)[np.argsort(temp)]"),
    }
    found = {name: [] for name in wanted}
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt):
            continue
        text = textwrap.dedent(ast.get_source_segment(source, node, padded=True))
        for name, matches in wanted.items():
            if matches(text) and not any(text in other for _, other in found[name]):
                found[name].append((node.lineno, text))
    for name in ("exclude", "types", "weigh", "sort"):
        if not found[name]:
            sys.exit(f"{path} has no statement for BUAL's '{name}' step: is it the commit 347a4d1?")
    chosen = sorted(found["screen"]) + [min(found[name]) for name in ("exclude", "types", "weigh", "sort")]
    return [compile(text, path, "exec") for _, text in chosen]


def official_bual(repo: str, case: regimes.Case, kind: int) -> np.ndarray:
    """BUAL's selection by the official statements, fed the outputs its code would have: softmax in float32 on the
    networks' logits, every list in index order (its test_* functions sort by index)."""
    import torch
    k, n = case.num_known, len(case.targets)
    seen = not case.first_round
    aux = torch.softmax(torch.from_numpy(case.logits), dim=1)
    namespace = {"np": np, "args": Namespace(known_classes=k, type=kind), "ratio": case.extra["ratio"],
                 "known_openset_ind": [0] if seen else [], "Aux_ind": list(range(n)),
                 "Aux_pred": aux.argmax(dim=1).tolist(), "Aux_prob": aux.tolist(),
                 "query_pool_ind": list(range(n))}
    statements = bual_statements(repo)
    if seen:
        for statement in statements[:-4]:  # the auxiliary network's screening
            exec(statement, namespace)
    exec(statements[-4], namespace)  # the exclusion of what it predicts unknown
    candidates = sorted(namespace["query_pool_ind"])
    positive = torch.softmax(torch.from_numpy(case.extra["classifier_logits"]), dim=1).numpy()
    namespace.update(query_idx=candidates, query_prob=case.extra["nl_sums"][candidates].astype(np.float64).tolist(),
                     P_prob_list=positive[candidates].tolist())
    with contextlib.redirect_stdout(io.StringIO()):
        for statement in statements[-3:]:
            exec(statement, namespace)
    return np.asarray(namespace["sel_pseudo_ind"], dtype=np.int64)[:case.budget]  # the official [:1500] is the budget


def child(method: str, repo: str, out: str) -> None:
    """Run the official `method` on every case, the global generators seeded per case; write the selections."""
    import torch
    sys.path.insert(0, repo)
    on_the_cpu()
    selections = {}
    for regime in regimes.REGIMES:
        for seed in range(regimes.SEEDS):
            case = regimes.case(method, regime, seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            if method == "bual":
                for kind in regimes.BUAL_TYPES:
                    selections[f"{regime}/{seed}/t{kind}"] = official_bual(repo, case, kind)
            elif method == "mqnet":
                selections[f"{regime}/{seed}"] = official_mqnet(repo, case)
                if not case.first_round:  # the meta-network's own spread: another global seed
                    np.random.seed(seed + 1000)
                    torch.manual_seed(seed + 1000)
                    selections[f"{regime}/{seed}/another-seed"] = official_mqnet(repo, case)
            elif method == "lfosa":
                np.random.seed(regimes.gmm_seed(seed))
                selections[f"{regime}/{seed}"] = official_lfosa(repo, case)
                np.random.seed(regimes.gmm_seed(seed) + 1)  # the official code's own spread: another seed
                selections[f"{regime}/{seed}/another-seed"] = official_lfosa(repo, case)
            elif method == "eoal":
                try:
                    selections[f"{regime}/{seed}"] = official_eoal(repo, case)
                except IndexError:  # finch-clust 0.1.9 cannot give K clusters of the invalid set: no case
                    print(f"official eoal raised IndexError in {regime}/{seed} (FINCH 0.1.9: fewer than K "
                          "clusters in the invalid set's first partition); case left out", flush=True)
            else:
                for k1 in EAOA_K:
                    np.random.seed(regimes.gmm_seed(seed))  # the GMMs' starts: as osal's (official_regimes)
                    try:
                        selections[f"{regime}/{seed}/k{k1}"] = official_eaoa(repo, case, k1)
                    except ValueError as error:  # e.g. NaN scores where the official float32 overflows
                        print(f"official eaoa raised in {regime}/{seed}/k{k1} ({str(error).splitlines()[0]}); "
                              "case left out", flush=True)
    np.savez(out, **selections)


def finch_child(out: str) -> None:
    """The FINCH hierarchy (levels and the K-cluster partition) of the pinned release on every FINCH case."""
    from finch import FINCH
    result = {}
    for regime in regimes.REGIMES:
        for seed in range(5):
            for n in regimes.FINCH_SIZES:
                with contextlib.redirect_stdout(io.StringIO()):
                    levels, _, required = FINCH(regimes.finch_points(regime, seed, n), req_clust=10, verbose=False)
                result[f"{regime}/{seed}/{n}/levels"] = np.asarray(levels).reshape(n, -1).astype(np.int32)
                result[f"{regime}/{seed}/{n}/required"] = np.asarray(required).astype(np.int32)
    np.savez_compressed(out, **result)


EAOA_K = (1, 5)  # candidate-set sizes k1 checked (the official default starts at 5)


# -- the parent: fixtures and the table --------------------------------------------------------------------------
def run_child(arguments: list, pythonpath: list) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath))
    done = subprocess.run([sys.executable, "-W", "ignore", os.path.abspath(__file__)] + arguments, env=env)
    if done.returncode:
        sys.exit(f"the official code failed ({' '.join(arguments[:2])}); see the traceback above")


def commit_of(repo: str) -> str:
    done = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def table(fixtures: str) -> str:
    """The overlap table of osal's selections with the fixtures' official ones."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    from official_overlap import overlaps
    lines = ["| method | " + " | ".join(regimes.REGIMES) + " |", "|---|" + "---|" * len(regimes.REGIMES)]
    from osal.strategies.lfosa import LfOSA
    rows = [(method, method, None) for method in regimes.METHODS]
    rows.append(("lfosa", "lfosa, tie_break=loader", lambda k1: LfOSA(tie_break="loader")))
    for method, name, make in rows:
        path = os.path.join(fixtures, f"{method}.npz")
        if not os.path.exists(path):
            continue
        found = overlaps(method, np.load(path), make)
        cells = [f"{np.mean(found[r]):.3f} (min {np.min(found[r]):.2f})" for r in regimes.REGIMES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        other = os.path.join(fixtures, f"{method}-another-seed.npz")
        if make is None and os.path.exists(other):  # the official code against itself, another global seed
            first, second = np.load(path), np.load(other)
            found = {r: [regimes.overlap(second[key], first[key]) for key in second.files if key.startswith(r + "/")]
                     for r in regimes.REGIMES}
            cells = [f"{np.mean(found[r]):.3f} (min {np.min(found[r]):.2f})" for r in regimes.REGIMES]
            lines.append(f"| official {method}, another seed | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eoal", help="a copy of github.com/bardisafa/EOAL (baadd13)")
    parser.add_argument("--eaoa", help="a copy of github.com/chenchenzong/EAOA (66cdf84)")
    parser.add_argument("--lfosa", help="a copy of github.com/ningkp/LfOSA (3e22f75)")
    parser.add_argument("--mqnet", help="a copy of github.com/kaist-dmlab/MQNet (77b4b5c)")
    parser.add_argument("--bual", help="a copy of github.com/chenchenzong/BUAL (347a4d1)")
    parser.add_argument("--finch", help="a directory holding finch-clust 0.1.9 (pip install --target DIR)")
    parser.add_argument("--out", default=FIXTURES, help="where the fixtures go (default: tests/fixtures/official)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--finch-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    if args.finch_child:
        return finch_child(args.finch_child)
    for name, path in (("--eoal", args.eoal), ("--eaoa", args.eaoa), ("--lfosa", args.lfosa), ("--mqnet", args.mqnet),
                       ("--bual", args.bual), ("--finch", args.finch)):
        if path and not os.path.isdir(path):
            sys.exit(f"{name} {path} is not a directory: give a copy of the official repository (the header of "
                     "scripts/official_checks.py shows how)")
    if args.eoal and not args.finch:
        sys.exit("--eoal needs --finch DIR holding finch-clust 0.1.9, the release EOAL's code pins "
                 "(pip install --no-deps --target DIR finch-clust==0.1.9)")
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        if args.finch:
            run_child(["--finch-child", os.path.join(args.out, "finch-0.1.9.npz")], [args.finch])
            print(f"wrote {shown(os.path.join(args.out, 'finch-0.1.9.npz'))}", flush=True)
        methods = (("eoal", args.eoal, [args.finch]), ("eaoa", args.eaoa, []), ("lfosa", args.lfosa, []),
                   ("mqnet", args.mqnet, []), ("bual", args.bual, []))
        for method, repo, path in methods:
            if not repo:
                continue
            out = os.path.join(scratch, f"{method}.npz")
            run_child(["--child", method, os.path.abspath(repo), out], path + [os.path.abspath(repo)])
            selections = dict(np.load(out))
            selections["commit"] = np.array(commit_of(repo))
            spread = {key[:-len("/another-seed")]: selections.pop(key) for key in list(selections)
                      if key.endswith("/another-seed")}
            if spread:
                np.savez_compressed(os.path.join(args.out, f"{method}-another-seed.npz"), **spread)
            np.savez_compressed(os.path.join(args.out, f"{method}.npz"), **selections)
            print(f"wrote {shown(os.path.join(args.out, method + '.npz'))} (official {method} at {commit_of(repo)})",
                  flush=True)
    print(table(args.out))


if __name__ == "__main__":
    main()
