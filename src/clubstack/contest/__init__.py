"""contest: a WhibOx-style submission server (C programs judged in a sandbox)."""
