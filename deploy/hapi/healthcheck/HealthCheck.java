// Docker healthcheck for the HAPI FHIR image, which is distroless: no shell, no curl, no wget, only a Java
// runtime. Compiled once (see README.md next to this file) and mounted read-only into the container:
//
//     java -cp /opt/clinic-healthcheck HealthCheck http://localhost:8080/actuator/health
//
// Exit 0 when the URL answers 2xx within the timeout, 1 otherwise (refused, timeout, 503 while Spring Boot
// reports DOWN or is still starting). Uses java.base only, so it runs on any Java 17+ runtime.

import java.net.HttpURLConnection;
import java.net.URI;

public final class HealthCheck {
    private HealthCheck() {}

    public static void main(String[] args) {
        String url = args.length > 0 ? args[0] : "http://localhost:8080/actuator/health";
        int timeoutMs = args.length > 1 ? Integer.parseInt(args[1]) : 5000;
        int status;
        try {
            HttpURLConnection connection = (HttpURLConnection) URI.create(url).toURL().openConnection();
            connection.setConnectTimeout(timeoutMs);
            connection.setReadTimeout(timeoutMs);
            connection.setRequestProperty("Accept", "application/json");
            status = connection.getResponseCode();
            connection.disconnect();
        } catch (Exception error) {
            System.err.println("unhealthy: " + error);
            System.exit(1);
            return;
        }
        if (status < 200 || status >= 300) {
            System.err.println("unhealthy: HTTP " + status);
            System.exit(1);
        }
        System.out.println("healthy: HTTP " + status);
    }
}
