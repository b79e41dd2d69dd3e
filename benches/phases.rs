//! The pure phases (load, render, DAG, select) on synthetic projects of 100, 1,000 and 5,000
//! models. Run with `cargo bench --bench phases`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lakeflow::delta::sources::Reader;
use lakeflow::project::{LoadOptions, load};
use std::hint::black_box;

fn phases(c: &mut Criterion) {
    let mut group = c.benchmark_group("phases");
    group.sample_size(10);
    for models in [100usize, 1_000, 5_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        lakeflow::example_data::synthetic_project(dir.path(), models).expect("project");
        let opts = LoadOptions {
            project_dir: Some(dir.path().to_path_buf()),
            profiles_dir: Some(dir.path().to_path_buf()),
            ..LoadOptions::default()
        };
        group.bench_with_input(BenchmarkId::new("load", models), &opts, |b, o| {
            b.iter(|| black_box(load(o).expect("load")))
        });
        let project = load(&opts).expect("load");
        let reader = Reader::new(&project.target);
        group.bench_with_input(BenchmarkId::new("render", models), &project, |b, p| {
            b.iter(|| black_box(lakeflow::render::render(p, &reader).expect("render")))
        });
        let nodes = lakeflow::render::render(&project, &reader)
            .expect("render")
            .nodes;
        group.bench_with_input(BenchmarkId::new("graph", models), &nodes, |b, n| {
            b.iter(|| black_box(lakeflow::graph::build(n).expect("graph")))
        });
        let dag = lakeflow::graph::build(&nodes).expect("graph");
        let select = vec!["silver+".to_string()];
        group.bench_with_input(BenchmarkId::new("select", models), &nodes, |b, n| {
            b.iter(|| {
                black_box(lakeflow::select::select(n, &dag, &select, &[], None).expect("select"))
            })
        });
        group.bench_with_input(
            BenchmarkId::new("load+render+graph", models),
            &opts,
            |b, o| {
                b.iter(|| {
                    let p = load(o).expect("load");
                    let reader = Reader::new(&p.target);
                    let n = lakeflow::render::render(&p, &reader).expect("render").nodes;
                    black_box(lakeflow::graph::build(&n).expect("graph"))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, phases);
criterion_main!(benches);
