[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("Consort.Weights.Tests")]

namespace Consort.Weights;
