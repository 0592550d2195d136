#!/usr/bin/env bash
# docker-compose's Kafka (apache/kafka image): a single KRaft node, secured like `puhui kafka start`:
# SASL_SSL + SCRAM-SHA-512 for clients, mutual TLS on the controller listener, the StandardAuthorizer
# (deny by default; super users: admin and the broker's own certificate). The TLS files come from the
# kafka-certs service (`puhui kafka certs`), the admin password from PUHUI_KAFKA_ADMIN_PASSWORD. The
# config holding the password is written here, readable by the broker's user only.
set -euo pipefail
: "${PUHUI_KAFKA_ADMIN_PASSWORD:?set PUHUI_KAFKA_ADMIN_PASSWORD}"
: "${CLUSTER_ID:?set CLUSTER_ID}"
umask 077
mkdir -p /tmp/puhui-kafka
conf=/tmp/puhui-kafka/server.properties
data=/var/lib/kafka/data
cat > "$conf" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
listeners=CLIENT://:9092,CONTROLLER://:9093
advertised.listeners=CLIENT://kafka:9092
inter.broker.listener.name=CLIENT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:SSL,CLIENT:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${PUHUI_KAFKA_ADMIN_PASSWORD}";
ssl.keystore.type=PEM
ssl.keystore.location=/tls/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=/tls/ca.pem
ssl.enabled.protocols=TLSv1.3,TLSv1.2
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:CN=puhui-broker
allow.everyone.if.no.acl.found=false
log.dirs=/var/lib/kafka/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
cat > /tmp/puhui-kafka/admin.properties <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${PUHUI_KAFKA_ADMIN_PASSWORD}";
ssl.truststore.type=PEM
ssl.truststore.location=/tls/ca.pem
PROPS
if [[ ! -f "$data/meta.properties" ]]; then
  /opt/kafka/bin/kafka-storage.sh format -t "$CLUSTER_ID" -c "$conf" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=${PUHUI_KAFKA_ADMIN_PASSWORD}]"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$conf"
