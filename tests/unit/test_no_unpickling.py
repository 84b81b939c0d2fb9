"""Artifact loading never unpickles: no call in src/ can run a pickle (pickle/dill/joblib/torch loads, np.load with
allow_pickle, pandas.read_pickle, yaml.load without a safe loader, MLflow's pickling model loaders, shelve, marshal)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "streamrec"
# (module or object name, attribute): calls that may unpickle what they read
UNPICKLING = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("cPickle", "load"),
              ("cPickle", "loads"), ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"),
              ("cloudpickle", "loads"), ("joblib", "load"), ("torch", "load"), ("pd", "read_pickle"),
              ("pandas", "read_pickle"), ("shelve", "open"), ("marshal", "load"), ("marshal", "loads"),
              ("yaml", "unsafe_load"), ("yaml", "full_load"), ("sklearn", "load_model"), ("pyfunc", "load_model"),
              ("lightgbm", "load_model"), ("xgboost", "load_model")}
UNPICKLING_IMPORTS = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def findings(source: str, name: str = "<src>") -> list[str]:
    """Every call or import in `source` that may unpickle: file:line and what."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if module.split(".")[0] in UNPICKLING_IMPORTS:
                    found.append(f"{name}:{node.lineno}: imports {module}")
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        owner_name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
        attr = node.func.attr
        if (owner_name, attr) in UNPICKLING:
            found.append(f"{name}:{node.lineno}: {owner_name}.{attr}")
        if attr == "load" and owner_name in ("np", "numpy"):
            pickle = next((k.value for k in node.keywords if k.arg == "allow_pickle"), None)
            if pickle is not None and not (isinstance(pickle, ast.Constant) and pickle.value is False):
                found.append(f"{name}:{node.lineno}: np.load with allow_pickle not False")
        if attr == "load" and owner_name == "yaml":
            loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
            if loader is None or "Safe" not in ast.unparse(loader):
                found.append(f"{name}:{node.lineno}: yaml.load without a safe loader")
    return found


def test_no_code_in_src_can_unpickle():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50
    found = [f for path in files for f in findings(path.read_text(), str(path.relative_to(SRC.parent)))]
    assert not found, found


def test_the_scan_finds_each_way_of_unpickling():
    """The scanner is not blind: each pattern it is meant to catch is caught."""
    bad = ["import pickle", "from joblib import load", "x = pickle.loads(b)", "np.load(p, allow_pickle=True)",
           "numpy.load(p, allow_pickle=flag)", "pd.read_pickle(p)", "yaml.load(text)", "torch.load(f)",
           "mlflow.sklearn.load_model(uri)", "mlflow.pyfunc.load_model(uri)", "yaml.unsafe_load(t)"]
    for line in bad:
        assert findings(line), line
    good = ["np.load(p, allow_pickle=False)", "np.load(p)", "yaml.load(t, Loader=yaml.SafeLoader)", "json.load(f)",
            "lgb.Booster(model_file=str(p))"]
    for line in good:
        assert not findings(line), line
