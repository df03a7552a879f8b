/* Entry point of the libFuzzer build of HubFuzz (see scripts/fuzz.sh). Empty otherwise. */
