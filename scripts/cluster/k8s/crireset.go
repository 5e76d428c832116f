package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criReset stops and removes every pod sandbox and container known to a CRI
// runtime. dev-cluster runs it on `down` after the kubelet is stopped:
// going through CRI (rather than killing tasks with ctr) makes containerd run
// CNI DEL, which releases pod IPs, deletes veths and network namespaces and
// removes the per-pod iptables rules the bridge/portmap plugins added.
// Debian has no crictl, so this small subcommand stands in for
// `crictl rmp -fa`.
func criReset(args []string) int {
	endpoint := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--endpoint="); ok {
			endpoint = v
		}
	}
	if endpoint == "" {
		fmt.Fprintln(os.Stderr, "usage: tether-k8s cri-reset --endpoint=unix:///path/containerd.sock")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri-reset:", err)
		return 1
	}
	defer conn.Close()
	rs := runtimeapi.NewRuntimeServiceClient(conn)

	failed := 0
	pods, err := rs.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cri-reset: list pod sandboxes:", err)
		return 1
	}
	for _, p := range pods.Items {
		name := p.Id[:12]
		if p.Metadata != nil {
			name = p.Metadata.Namespace + "/" + p.Metadata.Name
		}
		// StopPodSandbox kills the pod's containers and tears down its network.
		if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "cri-reset: stop pod %s: %v\n", name, err)
			failed++
		}
		if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "cri-reset: remove pod %s: %v\n", name, err)
			failed++
		}
	}
	// Containers whose sandbox is already gone (should be none).
	ctrs, err := rs.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err == nil {
		for _, c := range ctrs.Containers {
			_, _ = rs.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id, Timeout: 0})
			if _, err := rs.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
				fmt.Fprintf(os.Stderr, "cri-reset: remove container %s: %v\n", c.Id[:12], err)
				failed++
			}
		}
	}
	fmt.Printf("cri-reset: removed %d pod sandbox(es)\n", len(pods.Items))
	if failed > 0 {
		return 1
	}
	return 0
}
