"""The pool form platform admins use on the compute page (the API takes the same fields)."""

from __future__ import annotations

from django import forms


class PoolForm(forms.Form):
    min_workers = forms.IntegerField(min_value=0, label="Min workers")
    max_workers = forms.IntegerField(min_value=0, label="Max workers")
    concurrency = forms.IntegerField(min_value=1, label="Tasks at once per worker")
    gpus = forms.IntegerField(min_value=0, label="GPUs per worker")
    memory = forms.CharField(required=False, label="Memory per worker", help_text="like 32Gi; empty: not limited")

    def changes(self) -> dict:
        data = dict(self.cleaned_data)
        data["memory"] = data["memory"].strip() or None
        return data
