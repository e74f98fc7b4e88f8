//! The demo's proxy in front of its replicas, as `blastwall demo` builds them.

use http::{Method, Request, StatusCode};
use http_body_util::Full;

use super::super::Admin;
use super::*;

#[tokio::test]
async fn a_client_of_the_demo_proxy_cannot_reconfigure_a_replica_through_it() {
    let mut replicas = Replicas::start().await.expect("replicas start");
    let config = Config::parse(
        &built_in_config(&replicas.addrs, Some(Admin::Off)),
        Path::new("(built-in demo config)"),
    )
    .expect("the built-in config is valid");
    let proxy = Proxy::bind(config).await.expect("the proxy binds");
    let (_, proxy_addr) = proxy.local_addrs().into_iter().next().expect("a listener");
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(proxy.serve(async {
        let _ = stopped.await;
    }));

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    for method in [Method::PATCH, Method::PUT] {
        let request = Request::builder()
            .method(method.clone())
            .uri(format!("http://{proxy_addr}/_mock/behaviour"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"status": 500}"#)))
            .expect("a valid request");
        let response = client.request(request).await.expect("answered");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method}");
    }
    for replica in replicas.running.iter().flatten() {
        assert_eq!(replica.behaviour(), Replicas::healthy());
    }
    let checkout = client
        .get(
            format!("http://{proxy_addr}/checkout")
                .parse()
                .expect("a uri"),
        )
        .await
        .expect("answered");
    assert_eq!(checkout.status(), StatusCode::OK);

    let _ = stop.send(());
    let _ = serving.await;
    replicas.stop_all().await;
}
