using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Consort.Formats;

namespace Consort.Tests.Formats;

public class TensorCodecTests
{
    [Fact]
    public void HalfToSingleMatchesTheLibraryOnEveryF16Value()
    {
        // All 65536 bit patterns (zeros, subnormals, normals, infinities, NaNs with payloads), at odd offsets so the
        // vector body and the scalar tail both run.
        var all = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        foreach (int skip in new[] { 0, 3 })
        {
            var src = all.AsSpan(skip);
            var expected = new float[src.Length];
            var actual = new float[src.Length];
            TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<ushort, Half>(src), expected);
            TensorCodec.HalfToSingle(src, actual);
            for (int i = 0; i < src.Length; i++)
                Assert.True(BitConverter.SingleToUInt32Bits(expected[i]) == BitConverter.SingleToUInt32Bits(actual[i]),
                    $"F16 {src[i]:x4}: expected {BitConverter.SingleToUInt32Bits(expected[i]):x8}, got {BitConverter.SingleToUInt32Bits(actual[i]):x8}");
        }
    }
}
