//! `ferry`: the binary that wires a source (a folder of manifests; later the Kubernetes API),
//! the data plane and the admin server into one pingora server.

#![forbid(unsafe_code)]

mod cli;
mod demo;
mod probe;
mod run;
mod shutdown;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, ENV_LOG, LogFormat};

/// mimalloc rather than glibc's malloc: the proxy allocates and frees small buffers per
/// request, and glibc's arenas cost ~11% of its CPU under load (see bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match &cli.command {
        Command::Run(args) if args.check => {
            println!("{:#?}", args.settings());
            Ok(())
        }
        Command::Run(args) => run::run(args.settings(), Vec::new()),
        Command::Demo(args) => demo::run(args),
        Command::Backend(args) => backend(args),
        Command::Probe(args) => probe::run(args),
        Command::L4 { command } => match command {
            cli::L4Command::Dump { bpf_pin_path } => ferry_dataplane::l4::dump(bpf_pin_path)
                .map(|text| print!("{text}"))
                .map_err(Into::into),
            cli::L4Command::Cleanup { bpf_pin_path } => ferry_dataplane::l4::cleanup(bpf_pin_path)
                .map(|removed| {
                    println!(
                        "removed {} pinned maps from {}",
                        removed.len(),
                        bpf_pin_path.display()
                    )
                })
                .map_err(Into::into),
        },
        Command::Rbac(args) => {
            print!(
                "{}",
                ferry_controller::cluster::rbac::manifests(&args.name, &args.namespace)
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn backend(args: &cli::BackendArgs) -> anyhow::Result<()> {
    let name = args.name.clone().unwrap_or_else(|| args.listen.to_string());
    let backend = ferry_dataplane::backend::Backend::new(&name).with_delay(args.delay);
    tokio::runtime::Runtime::new()?.block_on(async {
        if args.udp {
            let socket = tokio::net::UdpSocket::bind(args.listen).await?;
            tracing::info!(listen = %args.listen, name, "UDP echo backend serving");
            backend.serve_udp(socket).await;
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        tracing::info!(listen = %args.listen, name, "echo backend serving");
        backend.serve(listener).await;
        Ok(())
    })
}

fn init_logging(format: LogFormat) {
    // pingora's own info logs (service start-up and the like) are noise to ferry users.
    let filter = EnvFilter::try_from_env(ENV_LOG)
        .unwrap_or_else(|_| EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // `init` also routes the `log` records of pingora into tracing.
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
