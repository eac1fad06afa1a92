//! Scenario files for black-box tests (see `scenarios/README.md`).
