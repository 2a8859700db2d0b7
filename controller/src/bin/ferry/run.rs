//! `ferry run`: load the source, then hand the process to pingora's server with the
//! controller, proxy and admin services.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use async_trait::async_trait;
use ferry_controller::manifests::ManifestSource;
use ferry_dataplane::Router;
use ferry_dataplane::admin::{AdminService, Readiness};
use ferry_dataplane::l4::L4;
use ferry_dataplane::l7::{Https, proxy_service, self_signed_certificate};
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{RunArgs, Server, ShutdownWatch};
use pingora_core::services::ServiceReadyNotifier;
use pingora_core::services::ServiceWithDependents;
use pingora_core::services::background::{BackgroundService, background_service};

use crate::cli::{Settings, Source};
use crate::shutdown::Signals;
use ferry_controller::ControllerConfig;
use ferry_controller::cluster::{self, ClusterConfig};

/// Runs ferry until a signal stops it. `extra` services (the demo's backends) run beside it.
pub(crate) fn run(
    settings: Settings,
    extra: Vec<Box<dyn ServiceWithDependents>>,
) -> anyhow::Result<()> {
    // Bind problems are reported here, in plain words, rather than from inside a service.
    // In an upgrade the old process holds the listeners until it hands them over.
    if settings.upgrade {
        if settings.l4.is_some() {
            bail!(
                "--upgrade hands over the HTTP listeners only; restart ferry to upgrade with the                  L4 path (its pinned maps carry connections over), or pass --l4=false"
            );
        }
    } else {
        check_bindable(settings.http_addr, "--http-addr")?;
        check_bindable(settings.https_addr, "--https-addr")?;
    }
    let admin = bind_admin(settings.admin_addr)
        .with_context(|| format!("cannot listen on {} (--admin-addr)", settings.admin_addr))?;
    let admin_addr = admin.local_addr()?;

    let router = Router::new();
    let (source, described) = match &settings.source {
        Source::Manifests(dir) => {
            let mut source =
                ManifestSource::new(dir.clone(), settings.controller.clone(), router.clone());
            if let Err(errors) = source.reload() {
                let list: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
                bail!(
                    "the manifests in {} have errors:\n{}",
                    dir.display(),
                    list.join("\n")
                );
            }
            let source: Box<dyn ServiceWithDependents> = Box::new(background_service(
                "ferry controller",
                WatchManifests(Mutex::new(Some(source))),
            ));
            (source, format!("manifests in {}", dir.display()))
        }
        Source::Cluster { kubeconfig, config } => {
            let kube = kube_config(kubeconfig.as_deref())?;
            let described = format!("the cluster at {}", kube.cluster_url);
            let watch = WatchCluster(Mutex::new(Some(ClusterSource {
                kube,
                controller: settings.controller.clone(),
                cluster: (**config).clone(),
                router: router.clone(),
            })));
            let source: Box<dyn ServiceWithDependents> =
                Box::new(background_service("ferry controller", watch));
            (source, described)
        }
    };

    // The L4 path attaches before anything serves, so a node without BPF says so at once.
    let l4 = match &settings.l4 {
        Some(config) => Some(
            L4::start(config).context("the L4 path (run with --l4=false to keep kube-proxy)")?,
        ),
        None => None,
    };

    let conf = ServerConf {
        threads: settings.workers,
        // Requests in flight drain during the grace period (ended early by shutdown.rs); the
        // runtimes then get a moment to stop.
        grace_period_seconds: Some(settings.shutdown.grace_period_seconds()),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: settings.upgrade_socket.to_string_lossy().into_owned(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: settings.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();

    let controller = server.add_boxed_service(source);
    let https = Https {
        addr: settings.https_addr.to_string(),
        fallback: self_signed_certificate()?,
    };
    let proxy = server.add_service(proxy_service(
        &server.configuration,
        router.clone(),
        settings.proxy.clone(),
        &settings.http_addr.to_string(),
        Some(https),
    )?);
    // Listeners open once the controller has a snapshot in place.
    proxy.add_dependency(&controller);
    let readiness = Arc::new(Readiness::new(
        router.clone(),
        vec![settings.http_addr, settings.https_addr],
    ));
    server.add_service(background_service(
        "ferry admin",
        AdminService::new(admin, readiness.clone()),
    ));
    if let Some(l4) = l4 {
        server.add_service(background_service(
            "ferry l4",
            L4Service(Mutex::new(Some((l4, router.clone())))),
        ));
    }
    for service in extra {
        server.add_boxed_service(service);
    }
    tracing::info!(
        http = %settings.http_addr,
        https = %settings.https_addr,
        admin = %admin_addr,
        source = described,
        workers = settings.workers,
        "ferry is serving"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals {
            config: settings.shutdown,
            readiness,
        }),
    });
    Ok(())
}

/// The admin listener. `SO_REUSEPORT`, so that during a binary upgrade the new process can
/// bind it while the old one still serves it.
fn bind_admin(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Fails with a clear message when `addr` cannot be listened on (in use, or a privileged port).
fn check_bindable(addr: SocketAddr, flag: &str) -> anyhow::Result<()> {
    if addr.port() == 0 {
        bail!("{flag} {addr}: choose a port; ferry does not pick one for its listeners");
    }
    let probe = TcpListener::bind(addr).with_context(|| {
        let hint = if addr.port() < 1024 {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        } else {
            ""
        };
        format!("cannot listen on {addr} ({flag}){hint}")
    })?;
    drop(probe);
    Ok(())
}

/// Resolves how to reach the API server (kubeconfig file, in-cluster service account, or the
/// usual inference), so a bad configuration stops ferry at start with the reason.
fn kube_config(path: Option<&std::path::Path>) -> anyhow::Result<kube::Config> {
    // kube resolves configurations asynchronously; this runtime lives only for that, before
    // pingora takes the process.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match path {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(
                    file,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))
            }
            None => kube::Config::infer().await.context(
                "cannot reach a cluster: not running in one (no service account) and no \
                 kubeconfig; pass --kubeconfig PATH, or --manifests DIR to serve a folder",
            ),
        }
    })
}

/// Cluster mode as a pingora background service: ready (and the proxy listening) once every
/// watch has listed and the first snapshot is served.
struct WatchCluster(Mutex<Option<ClusterSource>>);

/// What cluster mode starts from.
struct ClusterSource {
    kube: kube::Config,
    controller: ControllerConfig,
    cluster: ClusterConfig,
    router: Arc<Router>,
}

#[async_trait]
impl BackgroundService for WatchCluster {
    async fn start_with_ready_notifier(
        &self,
        shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let Some(ClusterSource {
            kube,
            controller,
            cluster,
            router,
        }) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
        else {
            return;
        };
        // The client's connection tasks must live in this service's runtime.
        let client = match kube::Client::try_from(kube) {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "cannot create the Kubernetes client");
                return;
            }
        };
        cluster::run(
            client,
            controller,
            cluster,
            router,
            move || ready.notify_ready(),
            shutdown,
        )
        .await;
    }
}

/// The L4 path as a pingora background service: programs every snapshot until shutdown, then
/// detaches.
struct L4Service(Mutex<Option<(L4, Arc<Router>)>>);

#[async_trait]
impl BackgroundService for L4Service {
    async fn start(&self, shutdown: ShutdownWatch) {
        let taken = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((l4, router)) = taken {
            l4.run(router, shutdown).await;
        }
    }
}

/// The manifests watcher as a pingora background service.
struct WatchManifests(Mutex<Option<ManifestSource>>);

#[async_trait]
impl BackgroundService for WatchManifests {
    async fn start_with_ready_notifier(
        &self,
        shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        // The first snapshot was published before the server started.
        ready.notify_ready();
        let Some(source) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let dir = source.dir().display().to_string();
        if let Err(e) = source.watch(shutdown).await {
            tracing::error!(error = %e, dir, "cannot watch the manifests; changes will not be served");
        }
    }
}
