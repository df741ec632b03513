"""Forms for the admin console pages (input parsing only; services decide)."""

from __future__ import annotations

from django import forms

from cellar_server.teams.roles import ROLE_SCOPES, Role

ROLE_CHOICES = [(r.value, r.value.title()) for r in Role]
EXPIRY_CHOICES = [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("never", "Never")]


class TeamCreateForm(forms.Form):
    slug = forms.SlugField(max_length=50, help_text="Lowercase letters, digits and hyphens; used in URLs.")
    name = forms.CharField(max_length=120, required=False)


class TeamRenameForm(forms.Form):
    name = forms.CharField(max_length=120)


class InvitationForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Role.EDITOR.value)
    email = forms.EmailField(required=False, help_text="Optional: a note of whom the link is for.")


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in sorted(ROLE_SCOPES[Role.OWNER])],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to give the token every scope your role has.",
    )
    expires = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="90")

    def expires_in_days(self) -> int | None:
        value = self.cleaned_data["expires"]
        return None if value == "never" else int(value)


class QuotaForm(forms.Form):
    max_concurrent_cpu_tasks = forms.IntegerField(min_value=0, label="Max concurrent CPU tasks")
    max_concurrent_gpu_tasks = forms.IntegerField(min_value=0, label="Max concurrent GPU tasks")
    gpu_hours_per_month = forms.DecimalField(min_value=0, max_digits=10, decimal_places=2, label="GPU-hours per month")


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False)
    verb = forms.CharField(required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
