"""Admin console pages: my teams, overview, members, tokens, quotas, audit log."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from cellar_server.teams import selectors, services
from cellar_server.teams.forms import (
    AuditFilterForm,
    InvitationForm,
    QuotaForm,
    RoleForm,
    TeamCreateForm,
    TeamRenameForm,
    TokenForm,
)
from cellar_server.teams.models import ApiToken, Invitation
from cellar_server.teams.pages import back_to, page_actor, run_service, team_page
from cellar_server.teams.roles import Role
from cellar_server.teams.selectors import TeamAccess

# A secret (token, invitation link) is shown once on the page after a redirect, so a
# browser reload neither re-submits the form nor shows it again (POST/redirect/GET).
REVEAL_KEY = "cellar_reveal_once"
ROLES = [r.value for r in Role]


def _redirect_revealing(request: HttpRequest, access: TeamAccess, url_name: str, secret: str) -> HttpResponse:
    request.session[REVEAL_KEY] = secret
    return back_to(access, url_name)


@login_required
def team_list(request: HttpRequest) -> HttpResponse:
    form = TeamCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        created = {}

        def create() -> None:
            created["team"] = services.team_create(
                actor=page_actor(request), slug=form.cleaned_data["slug"], name=form.cleaned_data["name"]
            )

        if run_service(request, create, success="Team created. Invite your colleagues next."):
            return redirect("teams:members", team_slug=created["team"].slug)
    rows = selectors.teams_for_user(user=request.user)
    return render(request, "teams/team_list.html", {"rows": rows, "form": form})


@team_page("team:read")
def team_home(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    team = access.team
    rename_form = TeamRenameForm(request.POST or None, initial={"name": team.name})
    if request.method == "POST":
        if "team:write" not in access.scopes:
            messages.error(request, "Renaming the team needs the admin role.")
        elif rename_form.is_valid():
            run_service(
                request,
                lambda: services.team_update(
                    actor=page_actor(request), team=team, name=rename_form.cleaned_data["name"]
                ),
                success="Team renamed.",
            )
            return back_to(access, "teams:home")
    context = {
        "access": access,
        "member_count": selectors.membership_list(team=team).count(),
        "my_tokens": selectors.api_token_list(team=team, user=request.user).filter(revoked_at__isnull=True).count(),
        "rename_form": rename_form,
        "recent": selectors.audit_event_list(team=team, filters=selectors.AuditFilters())[:8]
        if "audit:read" in access.scopes
        else [],
    }
    return render(request, "teams/team_home.html", context)


@team_page("team:delete")
@require_POST
def team_delete(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    if request.POST.get("confirm") != access.team.slug:
        messages.error(request, f"Type the team's slug '{access.team.slug}' to confirm deletion.")
        return back_to(access, "teams:home")
    services.team_delete(actor=page_actor(request), team=access.team)
    messages.success(request, f"Team '{access.team.slug}' deleted.")
    return redirect("teams:list")


@team_page("members:read")
def members(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    can_manage = "members:write" in access.scopes
    invite_form = InvitationForm(request.POST or None)
    new_link = request.session.pop(REVEAL_KEY, None) if request.method == "GET" else None
    if request.method == "POST":
        if not can_manage:
            messages.error(request, "Inviting members needs the admin role.")
        elif invite_form.is_valid():
            result = {}

            def invite() -> None:
                result["pair"] = services.invitation_create(
                    actor=page_actor(request),
                    team=access.team,
                    role=invite_form.cleaned_data["role"],
                    email=invite_form.cleaned_data["email"],
                )

            if run_service(request, invite):
                _, raw = result["pair"]
                link = request.build_absolute_uri(reverse("teams:invitation", kwargs={"secret": raw}))
                return _redirect_revealing(request, access, "teams:members", link)
    context = {
        "access": access,
        "memberships": selectors.membership_list(team=access.team),
        "invitations": selectors.invitation_list(team=access.team) if can_manage else [],
        "invite_form": invite_form,
        "new_link": new_link,
        "can_manage": can_manage,
        "roles": ROLES,
    }
    return render(request, "teams/members.html", context)


@team_page("members:write")
@require_POST
def member_role(request: HttpRequest, access: TeamAccess, username: str) -> HttpResponse:
    form = RoleForm(request.POST)
    members = selectors.membership_list(team=access.team)
    membership = members.filter(user__username=username).first()
    if membership is None or not form.is_valid():
        messages.error(request, "Choose a valid role for an existing member.")
    else:
        run_service(
            request,
            lambda: services.membership_role_change(
                actor=page_actor(request), team=access.team, user_id=membership.user_id, role=form.cleaned_data["role"]
            ),
            success=f"{username} is now {form.cleaned_data['role']}.",
        )
    if membership is not None and request.headers.get("HX-Request"):
        # htmx swaps just this row (and the messages), so the page keeps its place.
        context = {"access": access, "m": members.get(pk=membership.pk), "can_manage": True, "roles": ROLES}
        return render(request, "teams/_member_row_swap.html", context)
    return back_to(access, "teams:members")


@team_page("team:read")
@require_POST
def member_remove(request: HttpRequest, access: TeamAccess, username: str) -> HttpResponse:
    membership = selectors.membership_list(team=access.team).filter(user__username=username).first()
    is_self = membership is not None and membership.user_id == request.user.pk
    if membership is None:
        messages.error(request, "That user is not a member of this team.")
    elif not is_self and "members:write" not in access.scopes:
        messages.error(request, "Removing members needs the admin role.")
    elif (
        run_service(
            request,
            lambda: services.membership_remove(actor=page_actor(request), team=access.team, user_id=membership.user_id),
            success="You left the team." if is_self else f"{username} was removed.",
        )
        and is_self
    ):
        return redirect("teams:list")
    return back_to(access, "teams:members")


@team_page("members:write")
@require_POST
def invitation_revoke(request: HttpRequest, access: TeamAccess, pk: int) -> HttpResponse:
    invitation = Invitation.objects.filter(pk=pk).first()
    if invitation is None:
        messages.error(request, "That invitation does not exist.")
    else:
        run_service(
            request,
            lambda: services.invitation_revoke(actor=page_actor(request), invitation=invitation),
            success="Invitation revoked.",
        )
    return back_to(access, "teams:members")


@login_required
def invitation(request: HttpRequest, secret: str) -> HttpResponse:
    found = services.invitation_for_secret(secret)
    if request.method == "POST" and found is not None:
        if run_service(
            request,
            lambda: services.invitation_accept(user=request.user, raw=secret),
            success=f"Welcome to {found.team.name}.",
        ):
            return redirect("teams:home", team_slug=found.team.slug)
    return render(request, "teams/invitation.html", {"invitation": found}, status=200 if found else 404)


@team_page("tokens:write")
def tokens(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    form = TokenForm(request.POST or None)
    new_token = request.session.pop(REVEAL_KEY, None) if request.method == "GET" else None
    if request.method == "POST" and form.is_valid():
        result = {}

        def mint() -> None:
            result["pair"] = services.api_token_create(
                actor=page_actor(request),
                team=access.team,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"] or None,
                expires_in_days=form.expires_in_days(),
            )

        if run_service(request, mint):
            return _redirect_revealing(request, access, "teams:tokens", result["pair"][1])
    sees_all = "tokens:admin" in access.scopes
    token_list = selectors.api_token_list(team=access.team, user=None if sees_all else request.user)
    context = {
        "access": access,
        "form": form,
        "new_token": new_token,
        "tokens": token_list,
        "sees_all": sees_all,
        "my_scopes": sorted(access.scopes - {"quotas:write"}),
        "api_base": request.build_absolute_uri("/api/v1/"),
    }
    return render(request, "teams/tokens.html", context)


@team_page("tokens:write")
@require_POST
def token_revoke(request: HttpRequest, access: TeamAccess, pk: int) -> HttpResponse:
    token = ApiToken.objects.filter(pk=pk).first()
    if token is None:
        messages.error(request, "That token does not exist.")
    else:
        run_service(
            request,
            lambda: services.api_token_revoke(
                actor=page_actor(request), token=token, can_revoke_others="tokens:admin" in access.scopes
            ),
            success=f"Token '{token.name}' revoked.",
        )
    return back_to(access, "teams:tokens")


@team_page("quotas:read")
def quotas(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    team = access.team
    can_edit = "quotas:write" in access.scopes
    form = QuotaForm(
        request.POST or None,
        initial={
            "max_concurrent_cpu_tasks": team.max_concurrent_cpu_tasks,
            "max_concurrent_gpu_tasks": team.max_concurrent_gpu_tasks,
            "gpu_hours_per_month": team.gpu_hours_per_month,
        },
    )
    if request.method == "POST":
        if not can_edit:
            messages.error(request, "Only platform admins edit quotas.")
        elif form.is_valid():
            run_service(
                request,
                lambda: services.team_quota_update(actor=page_actor(request), team=team, **form.cleaned_data),
                success="Quotas saved.",
            )
            return back_to(access, "teams:quotas")
    return render(request, "teams/quotas.html", {"access": access, "form": form, "can_edit": can_edit})


@team_page("audit:read")
def audit(request: HttpRequest, access: TeamAccess) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    filters = selectors.AuditFilters(**form.cleaned_data) if form.is_valid() else selectors.AuditFilters()
    events = selectors.audit_event_list(team=access.team, filters=filters).select_related("token")
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    per_day = (
        events.order_by().annotate(day=TruncDate("created_at")).values("day").annotate(n=Count("id")).order_by("day")
    )
    chart = {"x": [row["day"].isoformat() for row in per_day], "y": [row["n"] for row in per_day]}
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "access": access,
        "form": form,
        "page": page,
        "chart_json": json.dumps(chart),
        "verbs": selectors.audit_verbs(team=access.team),
        "actors": selectors.audit_actors(team=access.team),
        "query": query.urlencode(),
    }
    return render(request, "teams/audit.html", context)
