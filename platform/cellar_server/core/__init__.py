"""Cross-cutting pieces every app uses: tenancy scoping, errors, the base viewset."""
