//! `registers!`: every controller register declared once.
//!
//! Modelled on nova-core's `register!` (Linux `drivers/gpu/nova-core/regs/macros.rs`) and
//! tock-registers' `register_bitfields!`. One invocation holds the whole register map; each
//! register is one statement:
//!
//! ```text
//! /// Controller Configuration (CC).
//! #[derive(Default)]
//! CC @ 0x14 [cc]: u32 => Cc, ReadWrite(cc, set_cc), gone = Ones {
//!     0:0   en: bool => with_en, "EN: enable.";
//!     6:4   css: u8 =>? with_css, "CSS: I/O command set selected.";
//!     15:14 shn: u8 as Shutdown => with_shn, "SHN: shutdown notification.";
//! }
//! ```
//!
//! - `NAME @ offset [fields of the block struct]: width => Type`: the offset constant
//!   `offsets::NAME`, the value newtype `Type`, and static assertions that the block struct has
//!   the register's dwords at that offset (one field for `u32`, `lo, hi` for `u64`). At the end
//!   of the invocation, a static check that no two registers overlap.
//! - `ReadOnly(getter)`, `ReadWrite(getter, setter)` or `WriteOnly(setter)`: the
//!   [`ControllerRegs`](super::ControllerRegs) accessors, with compile-time offsets. A read-only
//!   register has no setter there and its value type no public `with_*` method; a write-only
//!   one has no getter.
//! - `gone = Ones | OnesOrZero | Never`: what a vanished device reads as (required for a
//!   readable register); `check = path`: a `fn(Type) -> Result<(), &'static str>` for what the
//!   specification requires beyond bit extraction. A type with a check has `decode` only; one
//!   without also has `from_raw`.
//! - Fields: `hi:lo name: kind [as Enum] [=> with_name | =>? with_name], "doc"`. `kind` is
//!   `bool` (one bit), `u8`/`u16`/`u32`/`u64` (shifted down), or `addr` (masked in place: an
//!   aligned address). `=>` makes an infallible setter — only for `bool`, enum and full-width
//!   fields (checked at compile time); `=>?` one that returns an error when the value does not
//!   fit. `as Enum` converts through `Enum::from_field(kind) -> Option<Enum>` (decode refuses
//!   `None`; the getter reads it as `Enum::RESERVED`) and `Enum as kind` for the setter.
//!
//! `type Type: width, Access [, check = path] { fields }` declares a value type alone, and
//! `NAME @ offset [..]: width => Type, Access(..), gone = ..;` a register of a type declared so.
//!
//! The expansion contains no `unsafe`: the accessors go through `IoMem::read32::<OFF>` and
//! `write32::<OFF>`. The macro is private to the crate.

/// See the [module docs](self).
macro_rules! registers {
    (
        block = $B:ident;
        extra_offsets { $($extra:tt)* }
        $($body:tt)*
    ) => {
        registers!(@munch $B; [$($extra)*]; []; []; []; $($body)*);
    };

    // ---- the end: offsets, layout check, access test -----------------------------------
    (@munch $B:ident; [$($extra:tt)*]; [$($off:tt)*]; [$($lay:tt)*]; [$($tst:tt)*];) => {
        /// Byte offsets of the controller registers in BAR0.
        pub mod offsets {
            $($off)*
            $($extra)*
        }

        const _: () = $crate::nvme::regs::check_layout(
            &[$($lay)*],
            ::core::mem::size_of::<$B>(),
        );

        /// One closure per register: each accessor of the register, on a fresh mock BAR0.
        #[cfg(test)]
        #[allow(clippy::type_complexity)]
        const ACCESS_TESTS: &[fn(&ControllerRegs<'_, $crate::backend::MockIo>,
            &$crate::backend::MockIo)] = &[$($tst)*];
    };

    // ---- a value type alone ---------------------------------------------------------------
    (@munch $B:ident; [$($extra:tt)*]; [$($off:tt)*]; [$($lay:tt)*]; [$($tst:tt)*];
        $(#[doc = $doc:literal])*
        $(#[derive($($der:ident),*)])?
        type $Ty:ident: $raw:ident, $access:ident $(, check = $check:path)? { $($fields:tt)* }
        $($rest:tt)*
    ) => {
        registers!(@type [$(#[doc = $doc])*] [$($($der),*)?] $Ty $raw $access [$($check)?]
            { $($fields)* });
        registers!(@munch $B; [$($extra)*]; [$($off)*]; [$($lay)*]; [$($tst)*]; $($rest)*);
    };

    // ---- a register with its own value type ----------------------------------------------
    (@munch $B:ident; [$($extra:tt)*]; [$($off:tt)*]; [$($lay:tt)*]; [$($tst:tt)*];
        $(#[doc = $doc:literal])*
        $(#[derive($($der:ident),*)])?
        $NAME:ident @ $o:literal [$($sf:ident),+]: $raw:ident => $Ty:ident,
            $access:ident($($acc:ident),+) $(, gone = $gone:ident)? $(, check = $check:path)?
            { $($fields:tt)* }
        $($rest:tt)*
    ) => {
        registers!(@type [$(#[doc = $doc])*] [$($($der),*)?] $Ty $raw $access [$($check)?]
            { $($fields)* });
        registers!(@decode $access $NAME $Ty $raw [$($gone)?]);
        registers!(@munch $B; [$($extra)*]; [$($off)*]; [$($lay)*]; [$($tst)*];
            $(#[doc = $doc])*
            $NAME @ $o [$($sf),+]: $raw => $Ty, $access($($acc),+) $(, gone = $gone)?;
            $($rest)*);
    };

    // ---- a register (of a type declared before) -------------------------------------------
    (@munch $B:ident; [$($extra:tt)*]; [$($off:tt)*]; [$($lay:tt)*]; [$($tst:tt)*];
        $(#[doc = $doc:literal])*
        $NAME:ident @ $o:literal [$($sf:ident),+]: $raw:ident => $Ty:ident,
            $access:ident($($acc:ident),+) $(, gone = $gone:ident)?;
        $($rest:tt)*
    ) => {
        registers!(@layout $B $NAME $o $raw [$($sf),+]);
        impl<B: $crate::Backend> ControllerRegs<'_, B> {
            registers!(@accessors $access($($acc),+) $NAME $o $raw $Ty [$($gone)?]);
        }
        registers!(@munch $B; [$($extra)*];
            [$($off)* $(#[doc = $doc])* #[doc = ""]
                #[doc = concat!("Offset ", stringify!($o), ", ", stringify!($raw), ".")]
                pub const $NAME: usize = $o;];
            [$($lay)* (stringify!($NAME), $o, ::core::mem::size_of::<$raw>()),];
            [$($tst)* registers!(@test $access($($acc),+) $NAME $o $raw $Ty),];
            $($rest)*);
    };

    // ---- layout assertions ------------------------------------------------------------------
    (@layout $B:ident $NAME:ident $o:literal u32 [$f:ident]) => {
        ::static_assertions::const_assert_eq!(::core::mem::offset_of!($B, $f), $o);
        const _: fn(&$B) -> &u32 = |b| &b.$f;
    };
    (@layout $B:ident $NAME:ident $o:literal u64 [$lo:ident, $hi:ident]) => {
        ::static_assertions::const_assert_eq!(::core::mem::offset_of!($B, $lo), $o);
        ::static_assertions::const_assert_eq!(::core::mem::offset_of!($B, $hi), $o + 4);
        const _: fn(&$B) -> &u32 = |b| &b.$lo;
        const _: fn(&$B) -> &u32 = |b| &b.$hi;
    };
    (@layout $($t:tt)*) => {
        compile_error!("a u32 register names one field of the block, a u64 register two (lo, hi)");
    };

    // ---- ControllerRegs accessors --------------------------------------------------------------
    (@accessors ReadOnly($get:ident) $NAME:ident $o:literal $raw:ident $Ty:ident [$($g:ident)?]) => {
        registers!(@getter $get $NAME $o $raw $Ty [$($g)?]);
    };
    (@accessors ReadWrite($get:ident, $set:ident) $NAME:ident $o:literal $raw:ident $Ty:ident
        [$($g:ident)?]) => {
        registers!(@getter $get $NAME $o $raw $Ty [$($g)?]);
        registers!(@setter $set $NAME $o $raw $Ty);
    };
    (@accessors WriteOnly($set:ident) $NAME:ident $o:literal $raw:ident $Ty:ident []) => {
        registers!(@setter $set $NAME $o $raw $Ty);
    };
    (@accessors $($t:tt)*) => {
        compile_error!("access is ReadOnly(getter), ReadWrite(getter, setter) or \
                        WriteOnly(setter); a write-only register is never read, so it has no gone =");
    };

    (@getter $get:ident $NAME:ident $o:literal u32 $Ty:ident [$g:ident]) => {
        #[doc = concat!("Reads ", stringify!($NAME), " (offset ", stringify!($o),
            ", one 32-bit read) and decodes it as a [`", stringify!($Ty), "`].")]
        pub fn $get(&self) -> $crate::nvme::Result<$Ty> {
            $Ty::decode_as(
                stringify!($NAME),
                $crate::nvme::regs::Gone::$g,
                self.regs.read32::<{ $o }>(),
            )
        }
    };
    (@getter $get:ident $NAME:ident $o:literal u64 $Ty:ident [$g:ident]) => {
        #[doc = concat!("Reads ", stringify!($NAME), " (offset ", stringify!($o),
            ", two 32-bit reads, low dword first) and decodes it as a [`", stringify!($Ty),
            "`]. A value whose high dword reads as a vanished device is read again, so a device ",
            "that vanished between the two reads (the low dword real) is gone, not a bad value.")]
        pub fn $get(&self) -> $crate::nvme::Result<$Ty> {
            let read = || {
                let lo = self.regs.read32::<{ $o }>();
                let hi = self.regs.read32::<{ $o + 4 }>();
                u64::from(lo) | u64::from(hi) << 32
            };
            let gone = $crate::nvme::regs::Gone::$g;
            let raw = read();
            $crate::nvme::regs::present(stringify!($NAME), gone, raw, u64::MAX)?;
            if $crate::nvme::regs::torn(gone, raw) {
                // The high dword reads as a vanished device: gone between the two reads, the
                // device reads as gone now; a real value reads the same again.
                $crate::nvme::regs::present(stringify!($NAME), gone, read(), u64::MAX)?;
            }
            $Ty::decode_as(stringify!($NAME), gone, raw)
        }
    };
    (@getter $get:ident $NAME:ident $o:literal $raw:ident $Ty:ident []) => {
        compile_error!(concat!("readable register ", stringify!($NAME),
            " needs gone = Ones | OnesOrZero | Never: how a vanished device reads"));
    };

    (@setter $set:ident $NAME:ident $o:literal u32 $Ty:ident) => {
        #[doc = concat!("Writes ", stringify!($NAME), " (offset ", stringify!($o),
            ", one 32-bit write).")]
        pub fn $set(&self, value: $Ty) {
            self.regs.write32::<{ $o }>(value.raw())
        }
    };
    (@setter $set:ident $NAME:ident $o:literal u64 $Ty:ident) => {
        #[doc = concat!("Writes ", stringify!($NAME), " (offset ", stringify!($o),
            ", two 32-bit writes, high dword first: controllers act on the low one).")]
        pub fn $set(&self, value: $Ty) {
            let v = value.raw();
            // CAST: the high dword, shifted down: 32 bits.
            self.regs.write32::<{ $o + 4 }>((v >> 32) as u32);
            // CAST: the low dword; the high one was written above.
            self.regs.write32::<{ $o }>(v as u32);
        }
    };

    // ---- the generated access test: one access per dword, at the register's offset ------------
    (@test $access:ident($($acc:ident),+) $NAME:ident $o:literal $raw:ident $Ty:ident) => {
        |regs: &ControllerRegs<'_, $crate::backend::MockIo>, mock: &$crate::backend::MockIo| {
            registers!(@test_each regs mock $access($($acc),+) $NAME $o $raw $Ty);
        }
    };
    (@test_each $regs:ident $mock:ident ReadOnly($get:ident) $NAME:ident $o:literal $raw:ident
        $Ty:ident) => {
        $mock.clear_events();
        let _ = $regs.$get();
        expect_dwords($mock, stringify!($NAME), $o, ::core::mem::size_of::<$raw>(), false);
    };
    (@test_each $regs:ident $mock:ident ReadWrite($get:ident, $set:ident) $NAME:ident $o:literal
        $raw:ident $Ty:ident) => {
        registers!(@test_each $regs $mock ReadOnly($get) $NAME $o $raw $Ty);
        registers!(@test_each $regs $mock WriteOnly($set) $NAME $o $raw $Ty);
    };
    (@test_each $regs:ident $mock:ident WriteOnly($set:ident) $NAME:ident $o:literal $raw:ident
        $Ty:ident) => {
        $mock.clear_events();
        $regs.$set($Ty(0));
        expect_dwords($mock, stringify!($NAME), $o, ::core::mem::size_of::<$raw>(), true);
    };

    // ---- the public decode of a register's own type ----------------------------------------
    (@decode WriteOnly $NAME:ident $Ty:ident $raw:ident []) => {};
    (@decode $access:ident $NAME:ident $Ty:ident $raw:ident [$g:ident]) => {
        impl $Ty {
            #[doc = concat!("Decodes a raw ", stringify!($NAME), " value: [`Error::DeviceGone`]",
                "(crate::nvme::Error::DeviceGone) if it reads as a vanished device (",
                stringify!($g), "), [`Error::BadRegister`](crate::nvme::Error::BadRegister) if \
                the specification does not allow it.")]
            pub fn decode(raw: $raw) -> $crate::nvme::Result<Self> {
                Self::decode_as(stringify!($NAME), $crate::nvme::regs::Gone::$g, raw)
            }
        }
    };
    (@decode $($t:tt)*) => {};

    // ---- the value type ------------------------------------------------------------------------
    (@type [$($doc:tt)*] [$($der:ident),*] $Ty:ident $raw:ident $access:ident [$($check:path)?]
        { $($hi:literal : $lo:literal $get:ident : $kind:tt $(as $conv:ident)?
            $(=> $set:ident)? $(=>? $tset:ident)?, $fdoc:literal;)* }
    ) => {
        $($doc)*
        #[derive(Clone, Copy, PartialEq, Eq, Hash $(, $der)*)]
        pub struct $Ty(pub(super) $raw);

        impl $Ty {
            /// Bits no field of this register covers (reserved).
            pub const RESERVED: $raw = !(0 $(| registers!(@fmask $raw $hi $lo))*);

            /// The raw value.
            pub const fn raw(self) -> $raw {
                self.0
            }

            registers!(@from_raw [$($check)?] $raw);

            /// The register value of `raw` read from register `reg`: a vanished device (as
            /// `gone` says it reads), then the fields' and the type's checks.
            #[allow(dead_code)] // the types of write-only registers are never decoded
            pub(super) fn decode_as(
                reg: &'static str,
                gone: $crate::nvme::regs::Gone,
                raw: $raw,
            ) -> $crate::nvme::Result<Self> {
                $crate::nvme::regs::present(reg, gone, u64::from(raw), u64::from(<$raw>::MAX))?;
                let value = $Ty(raw);
                #[allow(unused_variables)]
                let bad = |why: &'static str| $crate::nvme::Error::BadRegister {
                    reg,
                    value: u64::from(raw),
                    why,
                };
                $($(
                    let field = registers!(@extract value $raw $hi $lo $kind);
                    if $conv::from_field(field).is_none() {
                        return Err(bad(concat!(stringify!($get), " (bits ", stringify!($hi), ":",
                            stringify!($lo), ") has a reserved value")));
                    }
                )?)*
                $($check(value).map_err(bad)?;)?
                Ok(value)
            }

            $(
                registers!(@get $raw $hi $lo $get $kind [$($conv)?] $fdoc);
                registers!(@set $access $Ty $raw $hi $lo $get $kind [$($conv)?] [$($set)?]
                    [$($tset)?] $fdoc);
            )*
        }

        impl ::core::fmt::Debug for $Ty {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(stringify!($Ty))
                    .field("raw", &format_args!("{:#x}", self.0))
                    $(.field(stringify!($get), &registers!(@dbg self $get $kind)))*
                    .finish()
            }
        }
    };

    (@from_raw [] $raw:ident) => {
        /// A value from raw bits (every value is representable).
        pub const fn from_raw(raw: $raw) -> Self {
            Self(raw)
        }
    };
    (@from_raw [$check:path] $raw:ident) => {};

    (@dbg $s:ident $get:ident addr) => { format_args!("{:#x}", $s.$get()) };
    (@dbg $s:ident $get:ident $kind:tt) => { $s.$get() };

    // The mask of bits `hi:lo`, in place.
    (@fmask $raw:ident $hi:literal $lo:literal) => {
        ((<$raw>::MAX >> (<$raw>::BITS - 1 - ($hi - $lo))) << $lo)
    };
    // Bits `hi:lo` of `v`, shifted down, as the field's type.
    (@extract $v:ident $raw:ident $hi:literal $lo:literal $kind:ident) => {{
        const {
            assert!($hi >= $lo && $hi < <$raw>::BITS, "field bits outside the register");
            assert!($hi - $lo < <$kind>::BITS, "field wider than its type");
        };
        // CAST: the mask keeps `hi - lo + 1` bits, which the field type holds (asserted above).
        (($v.0 >> $lo) & (<$raw>::MAX >> (<$raw>::BITS - 1 - ($hi - $lo)))) as $kind
    }};

    // ---- getters ------------------------------------------------------------------------------
    (@get $raw:ident $hi:literal $lo:literal $get:ident bool [] $fdoc:literal) => {
        #[doc = $fdoc]
        #[doc = ""]
        #[doc = concat!("Bit ", stringify!($lo), ".")]
        pub const fn $get(self) -> bool {
            const { assert!($hi == $lo && $lo < <$raw>::BITS, "a bool field is one bit") };
            (self.0 >> $lo) & 1 == 1
        }
    };
    (@get $raw:ident $hi:literal $lo:literal $get:ident addr [] $fdoc:literal) => {
        #[doc = $fdoc]
        #[doc = ""]
        #[doc = concat!("Bits ", stringify!($hi), ":", stringify!($lo),
            ", in place: an address aligned to 2^", stringify!($lo), " bytes.")]
        pub const fn $get(self) -> $raw {
            const { assert!($hi >= $lo && $hi < <$raw>::BITS, "field bits outside the register") };
            self.0 & registers!(@fmask $raw $hi $lo)
        }
    };
    (@get $raw:ident $hi:literal $lo:literal $get:ident $kind:ident [] $fdoc:literal) => {
        #[doc = $fdoc]
        #[doc = ""]
        #[doc = concat!("Bits ", stringify!($hi), ":", stringify!($lo), ".")]
        pub const fn $get(self) -> $kind {
            registers!(@extract self $raw $hi $lo $kind)
        }
    };
    (@get $raw:ident $hi:literal $lo:literal $get:ident $kind:ident [$conv:ident] $fdoc:literal) => {
        #[doc = $fdoc]
        #[doc = ""]
        #[doc = concat!("Bits ", stringify!($hi), ":", stringify!($lo), " (a reserved value reads \
            as [`", stringify!($conv), "::RESERVED`]).")]
        pub const fn $get(self) -> $conv {
            match $conv::from_field(registers!(@extract self $raw $hi $lo $kind)) {
                Some(v) => v,
                None => $conv::RESERVED,
            }
        }
    };

    // ---- setters: public for writable registers, private to `regs` for read-only ones ---------------
    (@set ReadOnly $($t:tt)*) => { registers!(@set_vis [pub(super)] $($t)*); };
    (@set $access:ident $($t:tt)*) => { registers!(@set_vis [pub] $($t)*); };

    (@set_vis [$($vis:tt)*] $Ty:ident $raw:ident $hi:literal $lo:literal $get:ident $kind:tt
        [$($conv:ident)?] [] [] $fdoc:literal) => {};
    (@set_vis [$($vis:tt)*] $Ty:ident $raw:ident $hi:literal $lo:literal $get:ident bool [] [$set:ident]
        [] $fdoc:literal) => {
        #[doc = concat!("The value with `", stringify!($get), "` (bit ", stringify!($lo), ") set to `v`.")]
        #[allow(dead_code)]
        $($vis)* const fn $set(self, v: bool) -> Self {
            Self((self.0 & !(1 << $lo)) | ((v as $raw) << $lo))
        }
    };
    (@set_vis [$($vis:tt)*] $Ty:ident $raw:ident $hi:literal $lo:literal $get:ident $kind:ident
        [$conv:ident] [$set:ident] [] $fdoc:literal) => {
        #[doc = concat!("The value with `", stringify!($get), "` (bits ", stringify!($hi), ":",
            stringify!($lo), ") set to `v`.")]
        #[allow(dead_code)]
        $($vis)* const fn $set(self, v: $conv) -> Self {
            let mask = registers!(@fmask $raw $hi $lo);
            // `v as $kind` is the enum's discriminant; the mask keeps any stray bit out of the
            // neighbouring fields.
            Self((self.0 & !mask) | (((v as $kind) as $raw) << $lo) & mask)
        }
    };
    (@set_vis [$($vis:tt)*] $Ty:ident $raw:ident $hi:literal $lo:literal $get:ident $kind:ident []
        [$set:ident] [] $fdoc:literal) => {
        #[doc = concat!("The value with `", stringify!($get), "` (bits ", stringify!($hi), ":",
            stringify!($lo), ") set to `v`.")]
        #[allow(dead_code)]
        $($vis)* const fn $set(self, v: $kind) -> Self {
            const {
                assert!($hi - $lo + 1 == <$kind>::BITS, "an infallible setter needs a field as \
                    wide as its type; use =>? for a narrower one");
                assert!($hi < <$raw>::BITS, "field bits outside the register");
            };
            let mask = registers!(@fmask $raw $hi $lo);
            // `v as $raw` widens: the field type is no wider than the register (asserted).
            Self((self.0 & !mask) | ((v as $raw) << $lo))
        }
    };
    (@set_vis [$($vis:tt)*] $Ty:ident $raw:ident $hi:literal $lo:literal $get:ident addr [] []
        [$set:ident] $fdoc:literal) => {
        #[doc = concat!("The value with `", stringify!($get), "` (bits ", stringify!($hi), ":",
            stringify!($lo), ") set to the address `addr`, which must be aligned to 2^",
            stringify!($lo), " bytes and fit in the field.")]
        #[allow(dead_code)]
        $($vis)* const fn $set(self, addr: $raw) -> $crate::nvme::Result<Self> {
            let mask = registers!(@fmask $raw $hi $lo);
            if addr & !mask != 0 {
                return Err($crate::nvme::Error::Core($crate::Error::InvalidArgument(concat!(
                    stringify!($Ty), ".", stringify!($get), " (bits ", stringify!($hi), ":",
                    stringify!($lo), ") takes an address aligned to 2^", stringify!($lo),
                    " bytes"))));
            }
            Ok(Self((self.0 & !mask) | addr))
        }
    };
    (@set_vis [$($vis:tt)*] $Ty:ident $raw:ident $hi:literal $lo:literal $get:ident $kind:ident []
        [] [$set:ident] $fdoc:literal) => {
        #[doc = concat!("The value with `", stringify!($get), "` (bits ", stringify!($hi), ":",
            stringify!($lo), ") set to `v`; a value that does not fit the field is an error.")]
        #[allow(dead_code)]
        $($vis)* const fn $set(self, v: $kind) -> $crate::nvme::Result<Self> {
            const { assert!($hi >= $lo && $hi < <$raw>::BITS, "field bits outside the register") };
            let max = <$raw>::MAX >> (<$raw>::BITS - 1 - ($hi - $lo));
            // `v as $raw` widens: the field type is no wider than the register.
            if v as $raw > max {
                return Err($crate::nvme::Error::Core($crate::Error::InvalidArgument(concat!(
                    "the value does not fit ", stringify!($Ty), ".", stringify!($get), " (bits ",
                    stringify!($hi), ":", stringify!($lo), ")"))));
            }
            let mask = max << $lo;
            Ok(Self((self.0 & !mask) | ((v as $raw) << $lo)))
        }
    };
    (@set_vis $($t:tt)*) => {
        compile_error!("setters: `=> with_x` for bool, enum and full-width fields, `=>? with_x` \
                        for narrower integer fields and addresses");
    };
}
