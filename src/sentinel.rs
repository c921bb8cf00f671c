//! Redis Sentinel: which server is the primary of a service now.
//!
//! redis-rs does not follow a failover by itself, so `RedisConn` asks here on every new
//! connection: each sentinel in turn is asked `SENTINEL get-master-addr-by-name`, and the
//! address it names is used only once `ROLE` confirms that server is a primary (a sentinel
//! may still name the old primary for a moment after a failover).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo, Value};

use crate::connection::addr_like;

/// The sentinels of one service and how to log in to them.
#[derive(Clone)]
pub struct Sentinels {
    pub nodes: Vec<(String, u16)>,
    pub service: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Sentinels {
    /// The primary's address as named by the first sentinel that answers. Sentinels and
    /// the primary are reached like `transport` (over TLS with its settings, or not).
    pub async fn primary(
        &self,
        timeout: Duration,
        transport: &ConnectionAddr,
    ) -> Result<ConnectionAddr, String> {
        let mut reasons = Vec::new();
        for (host, port) in &self.nodes {
            let asked = tokio::time::timeout(timeout, self.ask(host, *port, transport)).await;
            match asked.unwrap_or_else(|_| Err("no answer in time".into())) {
                Ok(addr) => return Ok(addr),
                Err(why) => reasons.push(format!("{host}:{port}: {why}")),
            }
        }
        Err(format!(
            "no sentinel named a primary for service {:?} ({})",
            self.service,
            reasons.join("; ")
        ))
    }

    async fn ask(
        &self,
        host: &str,
        port: u16,
        transport: &ConnectionAddr,
    ) -> Result<ConnectionAddr, String> {
        let mut settings = redis::RedisConnectionInfo::default();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        let info = addr_like(transport, host.to_string(), port)
            .into_connection_info()
            .map_err(|e| e.to_string())?
            .set_redis_settings(settings);
        let client = Client::open(info).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&AsyncConnectionConfig::new())
            .await
            .map_err(|e| e.to_string())?;
        let named: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.service)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let (host, port) = named.ok_or("does not know the service")?;
        Ok(addr_like(transport, host, port))
    }

    /// For messages: the service and its sentinels.
    pub fn describe(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        format!(
            "the primary of service {:?} (sentinels {})",
            self.service,
            nodes.join(",")
        )
    }
}

/// Ok when the server behind `conn` is a primary; the reason otherwise.
pub async fn check_primary(conn: &mut MultiplexedConnection) -> Result<(), String> {
    let role: Vec<Value> = redis::cmd("ROLE")
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    let name = match role.first() {
        Some(Value::BulkString(name)) => String::from_utf8_lossy(name).into_owned(),
        Some(Value::SimpleString(name)) => name.clone(),
        _ => return Err("the server sentinels named gave no ROLE".into()),
    };
    if name == "master" {
        return Ok(());
    }
    Err(format!(
        "the server sentinels named is a {name}, not a primary (failover under way)"
    ))
}
