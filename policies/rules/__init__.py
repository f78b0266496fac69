"""The checks of the policy pack, one module per concern. Each module exposes `RULES`: the
`Rule`s it declares (name, description, what it checks and why, config schema), whose `check`
is a pure function of what a preview sends the analyzer (properties as read-only mappings,
numbers as floats) and the policy's config. `policies/pack.py` turns them into policies."""
