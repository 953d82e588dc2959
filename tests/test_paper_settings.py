"""models/paper_settings.toml: the paper's stated training settings beside paper_mlp's tuned ones."""

from salspike.circuit import Circuit


def test_paper_settings_are_the_stated_batch_and_epochs(repo_root, paper_model_path):
    """Catches: a paper_settings model file that does not train with the paper's batch 256 and 50 epochs
    (Sec. 3), that differs from paper_mlp in anything else than training settings, name and description, or
    a paper_mlp whose comments stop saying that it uses 32 and 60 instead."""
    stated = Circuit.load(repo_root / "models" / "paper_settings.toml")
    tuned = Circuit.load(paper_model_path)
    assert stated["training.batch_size"] == 256 and stated["training.epochs"] == 50
    differ = {k for k in stated.params if stated[k] != tuned[k]}
    assert differ == {"name", "description", "training.batch_size", "training.epochs"}, differ
    text = paper_model_path.read_text()
    assert "256" in text and "50" in text and "paper_settings" in text


def test_self_assembly_model_is_paper_mlp_with_fast_interstream_rates_and_decay(repo_root, paper_model_path):
    """Catches: models/self_assembly.toml drifting from the regime docs/reproduction.md measured (paper_mlp with
    eta_V = eta_Vbar = eta_W = 0.02 and gamma = 3e-4 on all four groups, nothing else changed)."""
    regime = Circuit.load(repo_root / "models" / "self_assembly.toml")
    tuned = Circuit.load(paper_model_path)
    differ = {k for k in regime.params if regime[k] != tuned[k]}
    assert differ == {"name", "description", "eta.V", "eta.Vbar", "gamma"}, differ
    assert regime["eta.V"] == regime["eta.Vbar"] == regime["eta.W"] == 0.02 and regime["gamma"] == 3e-4
    assert regime["decay_groups"] == ["W", "Wbar", "V", "Vbar"]
