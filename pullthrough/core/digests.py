"""The digests of an artifact, as Pulp's default ALLOWED_CONTENT_CHECKSUMS: those computed and
shown, and md5 and sha1, shown as null and refused when given (Pulp refuses forbidden ones)."""

COMPUTED = ("sha224", "sha256", "sha384", "sha512")
FORBIDDEN = ("md5", "sha1")
NAMED = (*FORBIDDEN, *COMPUTED)  # every digest an artifact has a field and a filter for
