//! The restore controls end to end (issue #10), each through the chart's values and the
//! restore Job as it runs in the cluster: a source cluster is backed up, an empty (or not so
//! empty) target gets it back, and the test looks at the objects on the target.

use dr_test_support as support;

use dr_core::catalog::Mode;
use dr_core::failure::ErrorKind;
use serde_json::{json, Value};
use support::apiserver::ApiServer;
use support::restore_fixture::*;

/// The usual source, with a noisy namespace, labelled objects, a PVC, a RoleBinding and a
/// ConfigMap that names a service by its cluster host name.
async fn source() -> ApiServer {
    let api = source_cluster().await;
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "noisy"}}));
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "chatter", "namespace": "noisy"}, "data": {"x": "1"}}));
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "front", "namespace": "shop", "labels": {"app": "web", "tier": "front"}},
                    "data": {"db": "postgres://db.shop.svc.cluster.local:5432/shop", "other": "cache.noisy.svc"}}));
    api.seed(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop", "labels": {"app": "web"}},
                    "spec": {"storageClassName": "gp2", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}));
    api.seed(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "shop-reader"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "shop-reader"},
                    "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]}));
    api
}

fn skipped(report: &Value, kind: &str, why: &str) -> u64 {
    report["byKind"][kind]["skipped"][why].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_kind_and_label_rules_choose_what_comes_back_and_say_why() {
    let source = source().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), Mode::Full).await;

    // Leave out a namespace and a kind.
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    let report = restore(&target, &values(&cluster_id, json!({"select": {"excludeNamespaces": ["noisy"], "excludeKinds": ["secrets"]}})), loc.path()).report();
    assert!(find(&target, "", "namespaces", "", "noisy").is_none());
    assert!(find(&target, "", "configmaps", "noisy", "chatter").is_none());
    assert!(find(&target, "", "configmaps", "shop", "settings").is_some());
    assert!(find(&target, "", "secrets", "shop", "db").is_none());
    assert_eq!(skipped(&report, "ConfigMap", "in --exclude-namespaces"), 1, "{report}");
    assert_eq!(skipped(&report, "Namespace", "in --exclude-namespaces"), 1, "{report}");
    assert!(skipped(&report, "Secret", "kind in --exclude-kinds") >= 2, "{report}");

    // Labels: only what matches, and the namespace it lives in.
    let target = target_cluster(raw_secret(PASS)).await;
    let report =
        restore(&target, &values(&cluster_id, json!({"select": {"includeNamespaces": ["shop"], "selector": "app=web,tier in (front)"}})), loc.path()).report();
    assert!(find(&target, "", "configmaps", "shop", "front").is_some());
    assert!(find(&target, "", "namespaces", "", "shop").is_some());
    assert!(find(&target, "", "configmaps", "shop", "settings").is_none());
    assert!(find(&target, "", "persistentvolumeclaims", "shop", "data").is_none(), "tier does not match");
    assert_eq!(skipped(&report, "PersistentVolumeClaim", "labels do not match --selector"), 1, "{report}");
    assert_eq!(skipped(&report, "ConfigMap", "not in --include-namespaces"), 1, "{report}");

    // Only some kinds (named as kind.group or plural), and the namespaces they live in.
    let target = target_cluster(raw_secret(PASS)).await;
    let report = restore(&target, &values(&cluster_id, json!({"select": {"includeKinds": ["Deployment.apps", "configmaps"]}})), loc.path()).report();
    assert!(find(&target, "apps", "deployments", "shop", "web").is_some());
    assert!(find(&target, "", "configmaps", "noisy", "chatter").is_some());
    assert!(find(&target, "", "namespaces", "", "noisy").is_some());
    assert!(find(&target, "", "secrets", "shop", "db").is_none());
    assert!(find(&target, "", "serviceaccounts", "shop", "web").is_none());
    assert_eq!(skipped(&report, "ServiceAccount", "kind not in --include-kinds"), 1, "{report}");

    // One object by name.
    let target = target_cluster(raw_secret(PASS)).await;
    let report =
        restore(&target, &values(&cluster_id, json!({"select": {"objects": ["Deployment.apps/shop/web", "ClusterRole/shop-reader"]}})), loc.path()).report();
    assert!(find(&target, "apps", "deployments", "shop", "web").is_some());
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterroles", "", "shop-reader").is_some());
    assert!(find(&target, "", "namespaces", "", "shop").is_some(), "the object's namespace comes along");
    assert!(find(&target, "", "configmaps", "shop", "settings").is_none());
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterrolebindings", "", "shop-reader").is_none());
    assert_eq!(report["restored"], 3, "{report}");

    // Rules that are not rules fail before anything is read or written.
    let target = target_cluster(raw_secret(PASS)).await;
    let run = restore(&target, &values(&cluster_id, json!({"select": {"selector": "app in web"}})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::BadInput));
    assert!(run.failure().contains("select: selector \"app in web\""), "{}", run.message);
    assert!(find(&target, "", "namespaces", "", "shop").is_none());
    // The chart's schema refuses what it can see is wrong.
    let err = render(&values(&cluster_id, json!({"select": {"objects": ["web"]}}))).unwrap_err();
    assert!(err.contains("objects"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_restored_under_another_name_takes_its_references_along() {
    let source = source().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), Mode::Full).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    target.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mods", "namespace": NS}, "data": {"rules.yaml": r#"
version: v1
rules:
  - match: {kinds: [Deployment.apps], namespaces: [shop-dr]}
    patches:
      - {op: replace, path: /spec/replicas, value: 0}
      - {op: add, path: /metadata/labels, value: {drill: "yes"}}
  - match: {kinds: [ConfigMap], names: [settings]}
    substitutions:
      - {path: /data/currency, regex: "^EUR$", replacement: "CHF"}
"#}}));
    let vals = values(
        &cluster_id,
        json!({
            "select": {"excludeNamespaces": ["noisy"]},
            "mapping": {"namespaces": {"shop": "shop-dr"}, "storageClasses": {"gp2": "standard"}, "imageRegistries": {"docker.io": "mirror.local/hub"}, "hostNameKinds": ["ConfigMap"]},
            "resourceModifiers": {"configMap": "mods"},
        }),
    );
    let report = restore(&target, &vals, loc.path()).report();
    assert_eq!(report["failed"], 0, "{report}");
    assert!(find(&target, "", "namespaces", "", "shop").is_none());
    assert!(find(&target, "", "namespaces", "", "shop-dr").is_some());
    // Host names follow the namespace; others stay.
    let front = find(&target, "", "configmaps", "shop-dr", "front").expect("moved");
    assert_eq!(front["data"]["db"], "postgres://db.shop-dr.svc.cluster.local:5432/shop");
    assert_eq!(front["data"]["other"], "cache.noisy.svc");
    // Binding subjects, storage classes, images.
    let binding = find(&target, "rbac.authorization.k8s.io", "clusterrolebindings", "", "shop-reader").unwrap();
    assert_eq!(binding["subjects"][0]["namespace"], "shop-dr");
    assert_eq!(find(&target, "", "persistentvolumeclaims", "shop-dr", "data").unwrap()["spec"]["storageClassName"], "standard");
    let web = find(&target, "apps", "deployments", "shop-dr", "web").unwrap();
    assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["image"], "mirror.local/hub/library/nginx");
    // The resource modifiers, after the mapping.
    assert_eq!(web["spec"]["replicas"], 0);
    assert_eq!(web["metadata"]["labels"]["drill"], "yes");
    assert_eq!(find(&target, "", "configmaps", "shop-dr", "settings").unwrap()["data"]["currency"], "CHF");
    assert_eq!(report["byKind"]["Deployment.apps"]["modified"], 1, "{report}");
    // The garbage collector has had its pass: an ownerReference left at a source UID would
    // have had its object deleted, as on a real cluster.
    target.collect_garbage();
    // Owned objects are relinked in their new namespace.
    let widget = find(&target, "shop.example.com", "widgets", "shop-dr", "w1").unwrap();
    let owned = find(&target, "", "configmaps", "shop-dr", "w1-config").unwrap();
    assert_eq!(owned["metadata"]["ownerReferences"][0]["uid"], widget["metadata"]["uid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_and_rules_that_cannot_work_fail_before_any_write() {
    let source = source().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), Mode::Full).await;
    let target = target_cluster(raw_secret(PASS)).await;
    let written = |t: &ApiServer| t.objects("", "namespaces").len();
    let before = written(&target);

    let run = restore(&target, &values(&cluster_id, json!({"mapping": {"namespaces": {"shop": "x", "noisy": "x"}}})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::BadInput));
    assert!(run.failure().contains("two namespaces map onto x"), "{}", run.message);

    let run = restore(&target, &values(&cluster_id, json!({"resourceModifiers": {"configMap": "missing"}})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::BadInput));
    assert!(run.failure().contains("resource modifiers ConfigMap missing is not in namespace kasten-io"), "{}", run.message);

    target.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad", "namespace": NS},
                       "data": {"rules.yaml": "version: v1\nrules:\n- match: {kinds: [ConfigMap]}\n  patches: [{op: frobnicate, path: /data}]\n"}}));
    let run = restore(&target, &values(&cluster_id, json!({"resourceModifiers": {"configMap": "bad"}})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::BadInput));
    assert!(run.failure().contains("rule 1: op \"frobnicate\""), "{}", run.message);

    // A rule that parses but cannot apply to an object it matches: found while planning.
    target.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "wrong", "namespace": NS},
                       "data": {"rules.yaml": "version: v1\nrules:\n- match: {kinds: [Deployment.apps]}\n  patches: [{op: remove, path: /spec/paused}]\n"}}));
    let run = restore(&target, &values(&cluster_id, json!({"resourceModifiers": {"configMap": "wrong"}})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::BadInput));
    let message = run.failure();
    assert!(
        message.contains("Deployment.apps shop/web") && message.contains("/spec/paused is not there") && message.contains("nothing was written"),
        "{message}"
    );
    assert_eq!(written(&target), before, "nothing was written");
    assert!(find(&target, "", "configmaps", NS, "k10-dr-remove-to-get-ownership").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_objects_are_compared_and_updated_when_asked() {
    let source = source().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, point_id) = backup(&source, loc.path(), Mode::Full).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    target.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    target.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "USD"}}));
    target.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "front", "namespace": "shop", "labels": {"app": "web", "tier": "front"}},
                       "data": {"db": "postgres://db.shop.svc.cluster.local:5432/shop", "other": "cache.noisy.svc"}}));
    let only_shop = json!({"select": {"includeNamespaces": ["shop"]}});

    // skip (the default): both left; the report says which one differs.
    let report = restore(&target, &values(&cluster_id, only_shop.clone()), loc.path()).report();
    let cm = &report["byKind"]["ConfigMap"];
    assert_eq!(cm["differs"], json!(["shop/settings"]), "{report}");
    assert_eq!(cm["unchanged"], 1, "{report}");
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "USD");

    // update: the one that differs is made what the point says; the equal one is left alone.
    let mut vals = values(&cluster_id, only_shop);
    vals["existing"] = json!("update");
    let report = restore(&target, &vals, loc.path()).report();
    let settings = find(&target, "", "configmaps", "shop", "settings").unwrap();
    assert_eq!(settings["data"]["currency"], "EUR");
    assert_eq!(settings["metadata"]["annotations"]["dr.kubectl-dr.io/restored-from"], point_id.as_str());
    assert_eq!(report["byKind"]["ConfigMap"]["updated"], 1, "{report}");
    assert_eq!(report["byKind"]["ConfigMap"]["differs"], json!(["shop/settings"]), "{report}");
    assert_eq!(report["updated"], 1, "{report}");
    assert!(
        find(&target, "", "configmaps", "shop", "front").unwrap()["metadata"]["annotations"].get("dr.kubectl-dr.io/restored-from").is_none(),
        "equal: not written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_restored_last_so_they_cannot_block_the_restore() {
    let source = source_cluster().await;
    // A validating webhook on ConfigMaps whose service has no endpoints on the target.
    source.seed(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "policy-guard"},
        "webhooks": [{"name": "guard.shop.example.com", "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                      "clientConfig": {"service": {"namespace": "shop", "name": "guard", "path": "/validate"}},
                      "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"], "scope": "*"}]}]}));
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), Mode::Full).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    // The grant scoped to the point's resources, as kubectl dr restore gives it: the warning
    // below needs only the chart's read-only rules for webhooks and EndpointSlices.
    let rbac = scoped_rbac(loc.path(), &cluster_id).await;
    let report = restore(&target, &values(&cluster_id, json!({"rbac": rbac})), loc.path()).report();
    assert_eq!(report["failed"], 0, "{report}");
    assert!(find(&target, "", "configmaps", "shop", "settings").is_some());
    assert!(find(&target, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "policy-guard").is_some());
    // The report warns that the webhook now refuses ConfigMap writes until its service runs.
    let warning = report["findings"].as_array().unwrap().iter().find(|f| f["check"] == "webhook").unwrap_or_else(|| panic!("no webhook warning: {report}"));
    assert!(warning["message"].as_str().unwrap().contains("guard.shop.example.com"), "{warning}");
    assert!(warning["objects"].as_array().unwrap().iter().any(|o| o == "configmaps shop/settings"), "{warning}");
    // A re-run, with the webhook restored and its service still down: the objects the first
    // run wrote are done, though the webhook refuses their creates.
    let again = restore(&target, &values(&cluster_id, json!({"rbac": scoped_rbac(loc.path(), &cluster_id).await})), loc.path()).report();
    assert_eq!(again["failed"], 0, "{again}");
    assert_eq!(again["byKind"]["ConfigMap"]["alreadyRestored"], report["byKind"]["ConfigMap"]["restored"], "{again}");
    // And it does: the test API server calls it as the real one would.
    let client = target.client();
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(client, "shop");
    let refused = cms.create(&Default::default(), &serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap()).await.unwrap_err();
    assert!(refused.to_string().contains("no endpoints available for service"), "{refused}");
}

/// A cluster as Kubernetes 1.24 (and older) served it: API versions a 1.36 cluster removed,
/// and the objects the API server makes for itself.
async fn old_cluster() -> ApiServer {
    let api = source_cluster().await;
    for (group, version, kind, plural, namespaced, new_version) in [
        ("flowcontrol.apiserver.k8s.io", "v1beta2", "FlowSchema", "flowschemas", false, "v1"),
        ("flowcontrol.apiserver.k8s.io", "v1beta2", "PriorityLevelConfiguration", "prioritylevelconfigurations", false, "v1"),
        ("policy", "v1beta1", "PodDisruptionBudget", "poddisruptionbudgets", true, "v1"),
        ("autoscaling", "v2beta1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, "v2"),
        ("batch", "v1beta1", "CronJob", "cronjobs", true, "v1"),
    ] {
        api.unserve(group, new_version, kind);
        api.serve(group, version, kind, plural, namespaced);
    }
    api.unserve("networking.k8s.io", "v1", "Ingress");
    api.serve("extensions", "v1beta1", "Ingress", "ingresses", true);
    api.seed(json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.batch", "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
                    "spec": {"group": "batch", "version": "v1beta1", "groupPriorityMinimum": 17400, "versionPriority": 15}}));
    api.seed(json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta2", "kind": "FlowSchema", "metadata": {"name": "system-leader-election", "annotations": {"apf.kubernetes.io/autoupdate-spec": "true"}},
                    "spec": {"matchingPrecedence": 100, "priorityLevelConfiguration": {"name": "leader-election"}}}));
    api.seed(json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta2", "kind": "PriorityLevelConfiguration", "metadata": {"name": "shop-batch"},
                    "spec": {"type": "Limited", "limited": {"assuredConcurrencyShares": 5, "limitResponse": {"type": "Reject"}}}}));
    api.seed(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}, "rules": []}));
    api.seed(json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "shop"}, "spec": {"minAvailable": 1, "selector": {}}}));
    api.seed(json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "shop"},
                    "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "backend": {"serviceName": "web", "servicePort": 80}}]}}]}}));
    api.seed(json!({"apiVersion": "autoscaling/v2beta1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "shop"},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                             "metrics": [{"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 70}}]}}));
    api.seed(json!({"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "report", "namespace": "shop"},
                    "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "r", "image": "report"}], "restartPolicy": "Never"}}}}}}));
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_from_an_older_kubernetes_restores_onto_a_newer_one() {
    let source = old_cluster().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), Mode::Full).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    // The grant names the point's resources and their successors (extensions ingresses are
    // written as networking.k8s.io ones).
    let rbac = scoped_rbac(loc.path(), &cluster_id).await;
    assert!(rbac["resources"].as_array().unwrap().contains(&json!({"group": "networking.k8s.io", "resource": "ingresses"})), "{rbac}");
    let report = restore(&target, &values(&cluster_id, json!({"rbac": rbac})), loc.path()).report();
    assert_eq!(report["failed"], 0, "{report}");
    // What the target makes itself is left to it, and the report says so.
    assert!(find(&target, "apiregistration.k8s.io", "apiservices", "", "v1beta1.batch").is_none());
    assert!(find(&target, "flowcontrol.apiserver.k8s.io", "flowschemas", "", "system-leader-election").is_none());
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterroles", "", "admin").is_none());
    assert_eq!(
        skipped(&report, "APIService.apiregistration.k8s.io", "managed by the target cluster (its API server registers its own API versions)"),
        1,
        "{report}"
    );
    // Removed versions are converted to what the target serves.
    let plc = find(&target, "flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", "", "shop-batch").expect("converted");
    assert_eq!(plc["apiVersion"], "flowcontrol.apiserver.k8s.io/v1");
    assert_eq!(plc["spec"]["limited"]["nominalConcurrencyShares"], 5);
    let pdb = find(&target, "policy", "poddisruptionbudgets", "shop", "web").expect("converted");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert!(pdb["spec"].get("selector").is_none(), "an empty v1beta1 selector selected nothing: {pdb}");
    let ingress = find(&target, "networking.k8s.io", "ingresses", "shop", "web").expect("converted");
    assert_eq!(ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"], json!({"service": {"name": "web", "port": {"number": 80}}}));
    let hpa = find(&target, "autoscaling", "horizontalpodautoscalers", "shop", "web").expect("converted");
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"], json!({"type": "Utilization", "averageUtilization": 70}));
    assert!(find(&target, "batch", "cronjobs", "shop", "report").is_some());
    assert_eq!(report["byKind"]["Ingress.networking.k8s.io"]["convertedFrom"]["extensions/v1beta1"], 1, "{report}");
}
