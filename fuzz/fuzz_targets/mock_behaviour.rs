//! The mock's control API takes JSON from the network: any bytes either parse into a
//! behaviour that validates or not, never a panic, and a valid behaviour decides any draw.
#![no_main]

use blastwall_chaos::mock::Behaviour;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(behaviour) = serde_json::from_slice::<Behaviour>(data)
        && behaviour.validate().is_ok()
    {
        let _ = behaviour.decide(u64::from(data.len() as u32), 0.5, 0.5);
    }
});
