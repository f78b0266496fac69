"""The service-mesh CrossGuard policy pack (`pulumi preview --policy-pack policies`).

`pack.py` declares every policy (importable, starts nothing); `rules/` holds the checks, one
module per concern, as pure functions of the resources a preview sends; `__main__.py` only
builds the `PolicyPack`, which starts the analyzer server. See docs/policy.md.
"""
