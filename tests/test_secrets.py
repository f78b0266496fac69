"""Secrets stay secrets: every `secure:` value of every committed stack file (the engine
replaces each by a unique placeholder) must be absent from every file the offline plan writes,
and the objects that carry one show `[secret]`. (That the configured root really flows into
the `cacerts` Secret, so its absence here is masking and not disuse, is proven in
test_mesh_ca.test_secret_carries_the_four_files_as_secrets.)"""

from __future__ import annotations

import json

from tools.engine import SECRET


def test_no_configured_secret_in_any_plan_file(plan):
    run, out = plan
    assert len(run.secret_values) >= 2, "the stack declares secrets (mesh CA root at least)"
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files
    for path in files:
        text = path.read_text()
        for value in run.secret_values:
            assert value not in text, f"{path.relative_to(out)} contains a configured secret"


def test_secret_carrying_objects_show_the_marker(plan):
    _, out = plan
    cacerts = (out / "manifests" / "secret-istio-system-cacerts.yaml").read_text()
    assert f"stringData: '{SECRET}'" in cacerts
    cert = next(
        r
        for r in json.loads((out / "resources.json").read_text())
        if r["type"] == "tls:index/locallySignedCert:LocallySignedCert"
    )
    assert cert["inputs"]["caPrivateKeyPem"] == SECRET
