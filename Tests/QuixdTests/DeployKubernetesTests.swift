import Foundation
import QuixPipeline
import Testing

@testable import quixd

// MARK: - Kubernetes

private let kubernetesDirectory = "deploy/kubernetes"
private let kubernetesValidate = repoPath(".venv-deploy/bin/kubernetes-validate")

/// The manifests: every .yaml of deploy/kubernetes but the kustomization itself.
private func kubernetesManifests() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: repoPath(kubernetesDirectory))
        .filter { $0.hasSuffix(".yaml") && $0 != "kustomization.yaml" }.sorted()
}

/// Every resource of every manifest, by `kind/name`.
private func kubernetesResources() throws -> [String: DeployYAML] {
    var resources: [String: DeployYAML] = [:]
    for file in try kubernetesManifests() {
        for document in try yamlDocuments("\(kubernetesDirectory)/\(file)") {
            let key = "\(document["kind"].string ?? "?")/\(document["metadata"]["name"].string ?? "?")"
            #expect(resources[key] == nil, "\(key) is defined twice")
            resources[key] = document
        }
    }
    return resources
}

@Suite("Deploy: the Kubernetes manifests")
struct DeployKubernetesTests {
    @Test(
        "kubernetes-validate --strict accepts every manifest (Kubernetes 1.37 and 1.29 schemas)",
        .enabled(
            if: FileManager.default.isExecutableFile(atPath: kubernetesValidate),
            "needs .venv-deploy: run scripts/setup-deploy-checks.sh (kubernetes-validate from PyPI)"))
    func schemas() async throws {
        let files = try kubernetesManifests().map { repoPath("\(kubernetesDirectory)/\($0)") }
        let resources = try kubernetesResources().count
        for version in [nil, "1.29.0"] as [String?] {
            let result = try await deployExecute(kubernetesValidate, ["--strict"] + (version.map { ["--kubernetes-version", $0] } ?? []) + files)
            let report = result.output + result.error
            #expect(result.status == 0, "\(report)")
            #expect(report.components(separatedBy: " passed for resource ").count - 1 == resources, "\(report)")
            #expect(!report.contains("WARN") && !report.contains("ERROR"), "\(report)")
        }
    }

    @Test("the kustomization lists every manifest, and names the StatefulSet's image")
    func kustomization() throws {
        let kustomization = try #require(yamlDocuments("\(kubernetesDirectory)/kustomization.yaml").first)
        #expect(kustomization["kind"].string == "Kustomization")
        let listed = kustomization["resources"].array.compactMap(\.string)
        #expect(listed.sorted() == (try kubernetesManifests()))
        #expect(Set(listed).count == listed.count, "listed twice: \(listed)")
        let image = try #require(try kubernetesResources()["StatefulSet/quixd"]?["spec"]["template"]["spec"]["containers"][0]["image"].string)
        let images = kustomization["images"].array.compactMap { $0["name"].string }
        #expect(images.contains(String(image.split(separator: ":").first ?? "")), "\(image) vs \(images)")
    }

    @Test("the StatefulSet: state volume, probes, static membership, grace, credentials, config mounts, non-root")
    func statefulSet() throws {
        let resources = try kubernetesResources()
        let set = try #require(resources["StatefulSet/quixd"])
        let configText = try #require(resources["ConfigMap/quixd-config"]?["data"]["quixd.yaml"].string)
        let config = try deployDaemonConfig(configText)
        let pod = set["spec"]["template"]["spec"]
        let containers = pod["containers"].array
        try #require(containers.count == 1)
        let container = containers[0]
        let mounts = container["volumeMounts"].array

        // State: a volumeClaimTemplate mounted at state.directory.
        let claims = set["spec"]["volumeClaimTemplates"].array.compactMap { $0["metadata"]["name"].string }
        let stateMount = mounts.first { $0["mountPath"].string == config.stateDirectory }
        #expect(stateMount.flatMap { $0["name"].string }.map { claims.contains($0) } == true, "no volumeClaimTemplate (\(claims)) at \(config.stateDirectory)")
        #expect(set["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"].array.compactMap(\.string) == ["ReadWriteOnce"])
        #expect(set["spec"]["serviceName"].string == "quixd")

        // Probes on http.listen's port.
        let httpPort = try #require(listenPort(config))
        #expect(httpPort == 8080)
        func probePort(_ probe: DeployYAML) -> Int? {
            if let number = probe["httpGet"]["port"].int { return number }
            return probe["httpGet"]["port"].string.flatMap { container["ports"].named($0)["containerPort"].int }
        }
        #expect(container["readinessProbe"]["httpGet"]["path"].string == "/readyz")
        #expect(probePort(container["readinessProbe"]) == httpPort)
        #expect(container["livenessProbe"]["httpGet"]["path"].string == "/healthz")
        #expect(probePort(container["livenessProbe"]) == httpPort)
        #expect(container["ports"].array.contains { $0["containerPort"].int == httpPort })

        // Static membership: group.instance.id is the pod name.
        let env = container["env"]
        #expect(env.named("QUIXD_GROUP_INSTANCE_ID")["valueFrom"]["fieldRef"]["fieldPath"].string == "metadata.name")
        #expect(DaemonConfigLoader.environmentKeys["QUIXD_GROUP_INSTANCE_ID"] == "kafka.groupInstanceId")

        // SIGTERM's grace fits in the pod's, with a margin.
        let grace = try #require(pod["terminationGracePeriodSeconds"].int)
        #expect(Double(grace) >= deploySeconds(config.shutdownGrace) + 5, "terminationGracePeriodSeconds \(grace) vs shutdown.grace \(config.shutdownGrace)")

        // SASL credentials from the Secret, whose keys exist.
        let secret = try #require(resources["Secret/quixd-kafka"])
        for (variable, key) in [("QUIXD_SASL_USERNAME", "username"), ("QUIXD_SASL_PASSWORD", "password")] {
            let reference = env.named(variable)["valueFrom"]["secretKeyRef"]
            #expect(reference["name"].string == "quixd-kafka", "\(variable)")
            #expect(reference["key"].string == key, "\(variable)")
            #expect(secret["stringData"][key].exists || secret["data"][key].exists, "the Secret has no \(key)")
        }

        // The config file where the image's entrypoint reads it; the pipelines directory whole
        // (no subPath: ConfigMap updates reach it), where the config lists it.
        let volumes = pod["volumes"]
        let configMount = try #require(mounts.first { $0["mountPath"].string == "/etc/quixd/quixd.yaml" })
        #expect(configMount["subPath"].string == "quixd.yaml")
        #expect(volumes.named(configMount["name"].string ?? "")["configMap"]["name"].string == "quixd-config")
        let pipelinesMount = try #require(mounts.first { $0["mountPath"].string == "/etc/quixd/pipelines" })
        #expect(!pipelinesMount["subPath"].exists)
        #expect(volumes.named(pipelinesMount["name"].string ?? "")["configMap"]["name"].string == "quixd-pipelines")
        #expect(config.pipelines == ["/etc/quixd/pipelines"])
        #expect(try dockerEntrypoint() == ["quixd", "run", "--config", "/etc/quixd/quixd.yaml"])

        // Non-root, as the image's user.
        #expect(pod["securityContext"]["runAsNonRoot"].bool == true)
        let user = try #require(pod["securityContext"]["runAsUser"].int)
        #expect(user != 0)
        #expect(String(user) == (try dockerUser()).split(separator: ":").first.map(String.init))
        #expect(container["securityContext"]["allowPrivilegeEscalation"].bool == false)
        #expect(container["resources"]["requests"].exists && container["resources"]["limits"].exists)
    }

    @Test("the ConfigMaps: the config loads as quixd loads it; the pipeline is pipelines/trip-stats.yaml verbatim")
    func configMaps() throws {
        let resources = try kubernetesResources()
        let config = try deployDaemonConfig(try #require(resources["ConfigMap/quixd-config"]?["data"]["quixd.yaml"].string))
        #expect(config.stateDirectory == "/var/lib/quixd")
        #expect(config.kafka.groupInstanceID == nil, "groupInstanceId comes from the pod name, not the ConfigMap")
        let pipelines = try #require(resources["ConfigMap/quixd-pipelines"]?["data"])
        #expect(pipelines.keys == ["trip-stats.yaml"])
        #expect(pipelines["trip-stats.yaml"].string == (try repoContents("pipelines/trip-stats.yaml")))
    }

    @Test("the Services and the PodDisruptionBudget select the StatefulSet's pods")
    func servicesAndBudget() throws {
        let resources = try kubernetesResources()
        let set = try #require(resources["StatefulSet/quixd"])
        let labels = set["spec"]["template"]["metadata"]["labels"]
        func selects(_ selector: DeployYAML) -> Bool {
            !selector.keys.isEmpty && selector.keys.allSatisfy { labels[$0].string == selector[$0].string }
        }
        #expect(selects(set["spec"]["selector"]["matchLabels"]))

        let headless = try #require(resources["Service/\(set["spec"]["serviceName"].string ?? "")"])
        #expect(headless["spec"]["clusterIP"].string == "None")
        #expect(selects(headless["spec"]["selector"]))

        let metrics = try #require(resources["Service/quixd-metrics"])
        #expect(selects(metrics["spec"]["selector"]))
        let annotations = metrics["metadata"]["annotations"]
        #expect(annotations["prometheus.io/scrape"].string == "true")
        #expect(annotations["prometheus.io/port"].string == "8080")
        #expect(annotations["prometheus.io/path"].string == "/metrics")
        #expect(metrics["spec"]["ports"].array.contains { $0["port"].int == 8080 })

        let budget = try #require(resources["PodDisruptionBudget/quixd"])
        #expect(budget["spec"]["maxUnavailable"].int == 1)
        #expect(selects(budget["spec"]["selector"]["matchLabels"]))
    }
}


// MARK: - One contract for the container tests and the StatefulSet

/// deploy/container.env: how scripts/test-deploy.sh runs the image, KEY=value per line.
private func containerContract() throws -> [String: String] {
    var values: [String: String] = [:]
    for line in try repoContents("deploy/container.env").split(separator: "\n") where !line.hasPrefix("#") {
        let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
        if parts.count == 2 { values[parts[0]] = parts[1] }
    }
    return values
}

@Suite("Deploy: the StatefulSet runs the image as the container tests ran it (deploy/container.env)")
struct DeployContractTests {
    @Test("image, user, state volume, config and pipelines mounts, port, probes, member id, grace, read-only root, /tmp")
    func statefulSetMatches() throws {
        let contract = try containerContract()
        for key in ["IMAGE_NAME", "USER_ID", "GROUP_ID", "STATE_DIR", "CONFIG", "PIPELINES_DIR", "HTTP_PORT", "READY_PATH", "LIVE_PATH",
                    "MEMBER_ENV", "GRACE_SECONDS", "READ_ONLY_ROOT", "TMP_SIZE_MB"] {
            try #require(contract[key] != nil, "deploy/container.env has no \(key)")
        }
        func value(_ key: String) -> String { contract[key]! }
        let resources = try kubernetesResources()
        let set = try #require(resources["StatefulSet/quixd"])
        let pod = set["spec"]["template"]["spec"]
        let container = pod["containers"][0]
        let mounts = container["volumeMounts"].array

        // The image: NAME:VERSION, the tag the scripts give the image they test (quixd --version).
        let image = try #require(container["image"].string)
        #expect(image.split(separator: "/").last.map(String.init) == "\(value("IMAGE_NAME")):\(QuixdVersion.current)", "\(image)")
        let kustomization = try #require(yamlDocuments("\(kubernetesDirectory)/kustomization.yaml").first)
        #expect(kustomization["images"][0]["newTag"].string == QuixdVersion.current)

        // The user, as the image's USER.
        let security = pod["securityContext"]
        #expect(security["runAsUser"].int.map(String.init) == (value("USER_ID")))
        #expect(security["runAsGroup"].int.map(String.init) == (value("GROUP_ID")))
        #expect(security["fsGroup"].int.map(String.init) == (value("GROUP_ID")))
        #expect(try dockerUser() == "\(value("USER_ID")):\(value("GROUP_ID"))")

        // The state volume.
        let stateDirectory = value("STATE_DIR")
        let claims = set["spec"]["volumeClaimTemplates"].array.compactMap { $0["metadata"]["name"].string }
        #expect(mounts.first { $0["mountPath"].string == stateDirectory }.flatMap { $0["name"].string }.map(claims.contains) == true)
        #expect(try dockerRuntime().contains { $0.keyword == "VOLUME" && $0.arguments == stateDirectory })

        // The config file and the pipelines directory, read-only; the entrypoint reads the config.
        let config = value("CONFIG"), pipelines = value("PIPELINES_DIR")
        #expect(mounts.first { $0["mountPath"].string == config }?["readOnly"].bool == true)
        #expect(mounts.first { $0["mountPath"].string == pipelines }?["readOnly"].bool == true)
        #expect(try dockerEntrypoint() == ["quixd", "run", "--config", config])

        // Port and probes.
        let port = try #require(Int(value("HTTP_PORT")))
        #expect(container["ports"].array.map { $0["containerPort"].int } == [port])
        #expect(container["readinessProbe"]["httpGet"]["path"].string == (value("READY_PATH")))
        #expect(container["readinessProbe"]["httpGet"]["port"].int == port)
        #expect(container["livenessProbe"]["httpGet"]["path"].string == (value("LIVE_PATH")))
        #expect(container["livenessProbe"]["httpGet"]["port"].int == port)
        let check = try #require(try dockerHealthCheck()).joined(separator: " ")
        #expect(check.contains("/dev/tcp/127.0.0.1/\(port)") && check.contains("GET \(value("LIVE_PATH")) "), "\(check)")

        // The member id from the pod name; every QUIXD_ variable one quixd knows.
        let member = value("MEMBER_ENV")
        #expect(container["env"].named(member)["valueFrom"]["fieldRef"]["fieldPath"].string == "metadata.name")
        #expect(DaemonConfigLoader.environmentKeys[member] == "kafka.groupInstanceId")
        for name in container["env"].array.compactMap({ $0["name"].string }) {
            #expect(DaemonConfigLoader.environmentKeys[name] != nil, "\(name) is no variable quixd reads")
        }

        // Grace, read-only root, no capabilities, no privilege gain, a small writable /tmp.
        #expect(pod["terminationGracePeriodSeconds"].int.map(String.init) == (value("GRACE_SECONDS")))
        let containerSecurity = container["securityContext"]
        #expect(containerSecurity["readOnlyRootFilesystem"].bool.map(String.init) == (value("READ_ONLY_ROOT")))
        #expect(containerSecurity["capabilities"]["drop"].array.compactMap(\.string) == ["ALL"])
        #expect(containerSecurity["allowPrivilegeEscalation"].bool == false)
        let tmp = try #require(mounts.first { $0["mountPath"].string == "/tmp" }?["name"].string)
        #expect(pod["volumes"].named(tmp)["emptyDir"]["sizeLimit"].string == "\(value("TMP_SIZE_MB"))Mi")
    }

    @Test("the container tests' config and the ConfigMap's agree where the contract is concerned")
    func configsAgree() throws {
        let contract = try containerContract()
        let resources = try kubernetesResources()
        let configMap = try deployDaemonConfig(try #require(resources["ConfigMap/quixd-config"]?["data"]["quixd.yaml"].string))
        let tested = try deployDaemonConfig(repoContents("deploy/test/quixd.yaml"))
        for config in [configMap, tested] {
            #expect(config.stateDirectory == contract["STATE_DIR"])
            #expect(config.pipelines == [contract["PIPELINES_DIR"] ?? "?"])
            #expect(listenPort(config).map(String.init) == contract["HTTP_PORT"])
            #expect(config.shutdownGrace == configMap.shutdownGrace)
            #expect(deploySeconds(config.shutdownGrace) + 5 <= Double(contract["GRACE_SECONDS"] ?? "0") ?? 0)
            #expect(config.logFormat == configMap.logFormat)
        }
    }

    @Test("scripts/test-deploy.sh runs the image with every value of the contract")
    func containerTestsUseIt() throws {
        let script = try repoContents("deploy/test/container-tests.sh")
        #expect(script.contains("source \"$DEPLOY_ROOT/deploy/container.env\""))
        for argument in [
            #"--user "$USER_ID:$GROUP_ID""#, "--read-only", #"--tmpfs "/tmp:size=${TMP_SIZE_MB}m""#, "--cap-drop ALL",
            "--security-opt no-new-privileges", #"--stop-timeout "$GRACE_SECONDS""#, #"-v "$volume:$STATE_DIR""#,
            #"quixd.yaml:$CONFIG:ro""#, #"-v "$pipelines:$PIPELINES_DIR:ro""#, #"-e "$MEMBER_ENV=$member""#,
        ] {
            #expect(script.contains(argument), "container-tests.sh does not run the image with \(argument)")
        }
        let runner = try repoContents("scripts/test-deploy.sh")
        #expect(runner.contains("source deploy/test/container-tests.sh"))
    }
}
