//! End-to-end tests: tether against a real Kubernetes cluster, image registry and
//! Docker-API engine (see `scripts/dev-cluster`). One binary, one module per scenario.

mod bench;
mod cluster;
mod connect;
mod data;
mod doctor;
mod example_pipeline;
mod guard;
mod intercept;
mod jobs;
mod laptop;
mod live;
mod observe;
mod plan;
mod policy;
mod process;
mod profiles;
mod pubsub;
mod registries;
mod reload;
mod rendered;
mod restart;
mod run;
mod scale;
mod shared;
mod support;
mod tui;
mod up;
mod workshop;
