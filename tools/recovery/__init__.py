"""Disaster recovery from stack exports (`python -m tools.recover`, docs/recovery.md): reading
an export (`state`), the mesh root CA (`root_ca`), the check, the plan and its runbook."""
