"""Flow (1) in the sandbox: the client grants the office's NIP, and only then may the office act for it."""

from __future__ import annotations

import pytest

from klucznik.ksef.errors import KsefError
from tests.fixtures.sandbox import SKIP_REQUEST_HEADER

CLIENT = "5261040828"
OFFICE = "7762811692"
STRANGER = "1060000062"


def _office_status(sandbox_server) -> int:
    """The final status of the office (its seal) authenticating in the client's context."""
    client = sandbox_server.client()
    challenge = client.challenge()
    init = client.submit_xades(
        sandbox_server.signed_request(challenge.challenge, context_nip=CLIENT, nip=OFFICE)
    )
    while True:
        status = client.auth_status(init.reference_number, init.authentication_token.token)
        if not status.status.in_progress:
            return status.status.code


def _grant(owner, **kwargs):
    accepted = owner.grant_entity(
        nip=OFFICE, full_name="Biuro Rachunkowe Test", description="Dostęp biura", **kwargs
    )
    first = owner.operation_status(accepted.reference_number)
    second = owner.operation_status(accepted.reference_number)
    return first, second


def test_office_needs_a_grant_and_gets_in_after_it(sandbox_server):
    assert _office_status(sandbox_server) == 415
    owner = sandbox_server.login(CLIENT)
    first, second = _grant(owner, can_delegate=True)
    assert first.status.code == 100  # asynchronous: accepted first
    assert second.status.code == 200
    assert _office_status(sandbox_server) == 200


def test_grant_is_not_effective_before_the_operation_completes(sandbox_server):
    owner = sandbox_server.login(CLIENT)
    owner.grant_entity(nip=OFFICE, full_name="Biuro Rachunkowe Test", description="Dostęp biura")
    assert _office_status(sandbox_server) == 415


def test_office_sees_received_grants_and_revocation_removes_access(sandbox_server):
    owner = sandbox_server.login(CLIENT)
    _grant(owner)
    office = sandbox_server.login(OFFICE)  # the office in its own context
    page = office.query_entity_grants()
    assert {g.permission_scope for g in page.permissions} == {"InvoiceRead", "InvoiceWrite"}
    assert {g.context_value for g in page.permissions} == {CLIENT}
    assert office.query_entity_grants(grantor_nip=STRANGER).permissions == ()
    for grant in page.permissions:
        accepted = owner.revoke_permission(grant.id)
        owner.operation_status(accepted.reference_number)
        assert owner.operation_status(accepted.reference_number).status.code == 200
    assert office.query_entity_grants().permissions == ()
    assert _office_status(sandbox_server) == 415


def test_only_owner_or_credentials_manager_may_grant(sandbox_server):
    sandbox_server.seed_permissions(
        context_nip=CLIENT, identifier_type="Nip", identifier=STRANGER, permissions=["InvoiceRead"]
    )
    reader = sandbox_server.login(CLIENT, nip=STRANGER)
    with pytest.raises(KsefError) as caught:
        reader.grant_entity(nip=OFFICE, full_name="Biuro Rachunkowe Test", description="Dostęp biura")
    assert caught.value.http_status == 403
    assert caught.value.reason_code == "missing-permissions"
    sandbox_server.seed_permissions(
        context_nip=CLIENT, identifier_type="Nip", identifier=STRANGER, permissions=["CredentialsManage"]
    )
    manager = sandbox_server.login(CLIENT, nip=STRANGER)
    _, done = _grant(manager)
    assert done.status.code == 200


def test_invalid_grant_body_gets_21405(sandbox_server):
    owner = sandbox_server.login(CLIENT)
    owner.session.headers[SKIP_REQUEST_HEADER] = "deliberately invalid"
    with pytest.raises(KsefError) as caught:  # fullName is 5..90 characters
        owner.grant_entity(nip=OFFICE, full_name="Bi", description="Dostęp biura")
    assert caught.value.codes == (21405,)
    assert any("fullName" in d or "too short" in d for d in caught.value.details)


def test_office_flow_through_the_owner_person(sandbox_server):
    sandbox_server.seed_owner(nip=CLIENT, pesel="90010112345")
    owner = sandbox_server.login(CLIENT, pesel="90010112345", style="profil-zaufany")
    _grant(owner)
    assert _office_status(sandbox_server) == 200


def test_office_in_the_client_context_sees_its_permissions_there(sandbox_server):
    owner = sandbox_server.login(CLIENT)
    _grant(owner, can_delegate=True)
    office = sandbox_server.login(CLIENT, nip=OFFICE)
    mine = office.query_personal_grants()
    assert {p.permission_scope for p in mine.permissions} == {"InvoiceRead", "InvoiceWrite"}
    assert all(p.context_value == CLIENT and p.state == "Active" and p.can_delegate for p in mine.permissions)
    assert [
        p.permission_scope for p in office.query_personal_grants(permission_types=["InvoiceRead"]).permissions
    ] == ["InvoiceRead"]
