"""SUIT numbering (draft-ietf-suit-manifest-37, update-management for use-before).

Only what trustedge processes is listed; anything else found in a manifest is
rejected, never skipped.
"""

from __future__ import annotations

from typing import Final

ENVELOPE_TAG: Final = 107

# envelope
ENV_DELEGATION: Final = 1
ENV_AUTH: Final = 2
ENV_MANIFEST: Final = 3

# manifest
MANIFEST_VERSION: Final = 1
SEQUENCE_NUMBER: Final = 2
COMMON: Final = 3
REFERENCE_URI: Final = 4
VALIDATE: Final = 7
LOAD: Final = 8
INVOKE: Final = 9
PAYLOAD_FETCH: Final = 16
INSTALL: Final = 20
LEGACY_INSTALL: Final = 17  # drafts -17..-28 (libcsuit 2023)
TEXT: Final = 23

#: Members that may be severed (present as a SUIT_Digest in the manifest).
SEVERABLE: Final = frozenset({PAYLOAD_FETCH, INSTALL, TEXT})

# common
COMMON_COMPONENTS: Final = 2
COMMON_SHARED_SEQUENCE: Final = 4

# conditions
COND_VENDOR_ID: Final = 1
COND_CLASS_ID: Final = 2
COND_IMAGE_MATCH: Final = 3
COND_COMPONENT_SLOT: Final = 5
# directives
DIR_SET_COMPONENT_INDEX: Final = 12
DIR_TRY_EACH: Final = 15
DIR_OVERRIDE_PARAMETERS: Final = 20
DIR_FETCH: Final = 21
DIR_COPY: Final = 22
DIR_INVOKE: Final = 23

CONDITIONS: Final = frozenset(
    {COND_VENDOR_ID, COND_CLASS_ID, COND_IMAGE_MATCH, COND_COMPONENT_SLOT}
)
DIRECTIVES_WITH_REPORT: Final = frozenset({DIR_FETCH, DIR_COPY, DIR_INVOKE})

COMMAND_NAMES: Final[dict[int, str]] = {
    COND_VENDOR_ID: "condition-vendor-identifier",
    COND_CLASS_ID: "condition-class-identifier",
    COND_IMAGE_MATCH: "condition-image-match",
    COND_COMPONENT_SLOT: "condition-component-slot",
    DIR_SET_COMPONENT_INDEX: "directive-set-component-index",
    DIR_TRY_EACH: "directive-try-each",
    DIR_OVERRIDE_PARAMETERS: "directive-override-parameters",
    DIR_FETCH: "directive-fetch",
    DIR_COPY: "directive-copy",
    DIR_INVOKE: "directive-invoke",
}

# parameters
P_VENDOR_ID: Final = 1
P_CLASS_ID: Final = 2
P_IMAGE_DIGEST: Final = 3
P_USE_BEFORE: Final = 4
P_COMPONENT_SLOT: Final = 5
P_IMAGE_SIZE: Final = 14
P_URI: Final = 21
P_SOURCE_COMPONENT: Final = 22
#: trustedge custom parameter (SUIT custom parameters are negative integers):
#: what a boot-chain component measures when it boots (role, PCR4 Authenticode,
#: UKI PCR11 sections, GRUB PCR9 file digest, PCR7 authority). ADR 0008.
P_BOOT_MEASUREMENT: Final = -257
#: trustedge custom parameter: SHA-256 binding of an encrypted payload's envelope
#: (header, salt, key commitment; not the slot list), so every chunk that
#: authenticates is bound to the signed manifest before its plaintext is used.
#: ADR 0007.
P_ENVELOPE_BINDING: Final = -258

PARAMETER_NAMES: Final[dict[int, str]] = {
    P_VENDOR_ID: "vendor-id",
    P_CLASS_ID: "class-id",
    P_IMAGE_DIGEST: "image-digest",
    P_USE_BEFORE: "use-before",
    P_COMPONENT_SLOT: "component-slot",
    P_IMAGE_SIZE: "image-size",
    P_URI: "uri",
    P_SOURCE_COMPONENT: "source-component",
    P_BOOT_MEASUREMENT: "trustedge-boot-measurement",
    P_ENVELOPE_BINDING: "trustedge-envelope-binding",
}

SEQUENCE_NAMES: Final[dict[int, str]] = {
    VALIDATE: "validate",
    LOAD: "load",
    INVOKE: "invoke",
    PAYLOAD_FETCH: "payload-fetch",
    INSTALL: "install",
}

SHA256: Final = -16
