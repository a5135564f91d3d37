//! Generated Rust for the platform's contracts in `proto/trust`. The `.proto` files are the documentation.

/// Encoded `FileDescriptorSet` of every contract, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/trust_descriptor.bin"));

pub mod common {
    pub mod v1 {
        tonic::include_proto!("trust.common.v1");
    }
}
pub mod ingest {
    pub mod v1 {
        tonic::include_proto!("trust.ingest.v1");
    }
}
pub mod alerting {
    pub mod v1 {
        tonic::include_proto!("trust.alerting.v1");
    }
}
pub mod notifications {
    pub mod v1 {
        tonic::include_proto!("trust.notifications.v1");
    }
}
pub mod safeguarding {
    pub mod v1 {
        tonic::include_proto!("trust.safeguarding.v1");
    }
}
pub mod commissioning {
    pub mod v1 {
        tonic::include_proto!("trust.commissioning.v1");
    }
}
pub mod operations {
    pub mod v1 {
        tonic::include_proto!("trust.operations.v1");
    }
}
