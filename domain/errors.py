"""Domain errors: each has one meaning, and the API maps each kind to one HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    title = "Domain error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# --- bad input (HTTP 422) -------------------------------------------------------------------
class InvalidInput(DomainError):
    """A command argument is not acceptable; `field` names it."""

    title = "Invalid input"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.reason = detail


class InvalidDuration(InvalidInput):
    title = "Invalid duration"


class InvalidEmail(InvalidInput):
    title = "Invalid e-mail address"


class InvalidPhone(InvalidInput):
    title = "Invalid phone number"


class InvalidUrl(InvalidInput):
    title = "Invalid URL"


class UnknownScope(InvalidInput):
    title = "Unknown scope"


class UnknownCategory(InvalidInput):
    title = "Unknown category"


class UnknownPlatform(InvalidInput):
    title = "Unknown platform"


class WeakPassword(InvalidInput):
    title = "Password too weak"


class RequiredScope(InvalidInput):
    """A scope the app requires was left out or asked to be revoked."""

    title = "Required scope"


class ScopeNotGranted(InvalidInput):
    """A scope was named that the seller has not granted (or the app does not ask for)."""

    title = "Scope not granted"


# --- not found / not yours (HTTP 404) ---------------------------------------------------------
class NotFound(DomainError):
    title = "Not found"


class AccountNotFound(NotFound):
    title = "Account not found"


class AppNotFound(NotFound):
    title = "App not found"


class InstallationNotFound(NotFound):
    title = "Installation not found"


class IncidentNotFound(NotFound):
    title = "Incident not found"


class WebhookNotFound(NotFound):
    title = "Webhook not found"


class DeliveryNotFound(NotFound):
    title = "Delivery not found"


class NotificationNotFound(NotFound):
    title = "Notification not found"


class ReviewNotFound(NotFound):
    title = "Review not found"


# --- authentication and role (HTTP 401 / 403) ---------------------------------------------
class InvalidCredentials(DomainError):
    title = "Invalid credentials"


class WrongRole(DomainError):
    title = "Wrong account role"


# --- not allowed for this account (HTTP 403) ------------------------------------------------
class Forbidden(DomainError):
    """The account may not do this (it is not a matter of role)."""

    title = "Forbidden"


class NotEligibleToReview(Forbidden):
    """Only a seller who has (or had) an authorized installation of an app reviews it."""

    title = "Not eligible to review"


class OwnReview(Forbidden):
    title = "Own review"


# --- state conflicts (HTTP 409) -------------------------------------------------------------
class Conflict(DomainError):
    title = "Conflict"


class EmailTaken(Conflict):
    title = "E-mail already registered"


class SlugTaken(Conflict):
    title = "Slug already taken"


class DuplicateInstallation(Conflict):
    title = "App already installed"


class AppDelisted(Conflict):
    title = "App is delisted"


class NotPendingAuthorization(Conflict):
    title = "Installation is not pending authorization"


class AuthorizationLapsed(Conflict):
    title = "Authorization window lapsed"


class AlreadyCancelled(Conflict):
    title = "Installation already cancelled"


class NotRenewable(Conflict):
    title = "Installation cannot be renewed"


class NotCancellable(Conflict):
    title = "Installation cannot be cancelled"


class NotExpirable(Conflict):
    title = "Installation cannot expire now"


class InstallationNotActive(Conflict):
    title = "Installation is not active"


class InstallationCancelled(InstallationNotActive):
    title = "Installation is cancelled"


class IncidentNotOpen(Conflict):
    title = "Incident is not open"


class IncidentAlreadyResolved(Conflict):
    title = "Incident already resolved"


class NotDue(Conflict):
    """Time (or another process) has not made this step due: a sweep or dispatcher skips it."""

    title = "Not due"


class AlreadyReviewed(Conflict):
    title = "App already reviewed"


class AlreadyMarkedHelpful(Conflict):
    title = "Already marked helpful"


class ReviewAlreadyHidden(Conflict):
    title = "Review already hidden"


class ReviewNotHidden(Conflict):
    title = "Review is not hidden"


class ConcurrentUpdate(Conflict):
    title = "Concurrent update"


# --- too many attempts (HTTP 429 with Retry-After) -----------------------------------------
class Throttled(DomainError):
    """Too many attempts (failed log-ins): try again after `retry_after` seconds."""

    title = "Too many attempts"

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


# --- OAuth (RFC 6749 error codes; the API picks the HTTP status) ---------------------------
class OAuthError(DomainError):
    """An RFC 6749 error: `error` is the registered code, `description` says why.

    `redirectable` errors of the authorization endpoint go back to the client's
    redirect_uri; the others (unknown client, wrong redirect_uri) must never redirect.
    """

    title = "OAuth error"

    def __init__(self, error: str, description: str, *, redirectable: bool = True) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirectable = redirectable
